"""LiteRT's own op profiler for a .tflite model, through the C API of the libLiteRt.so that ships in the
ai-edge-litert wheel (its Python API does not expose the profiler): a CompiledModel on the CPU (XNNPACK) with the
runtime option enable_profiling, warm-up runs, then timed runs between LiteRtStartProfiler and LiteRtStopProfiler,
and LiteRT's profile summary (the table TensorFlow Lite's benchmark_model prints with --enable_op_profiling).

Runs in a Studio worker and, uploaded beside the device profiler, on a device: the standard library and numpy only.
Written against the C API of ai-edge-litert 2.3.0 (pinned in pyproject); with another version a call that fails is
a LiteRtError naming it, and the one struct written here (a tensor type's dimensions) is checked before it is.
"""
import contextlib
import ctypes as C
import os
import re
import tempfile
import time

P = C.c_void_p
SIZE = C.c_size_t
HW_CPU = 1  # kLiteRtHwAcceleratorCpu
LOCK_WRITE = 1  # kLiteRtTensorBufferLockModeWrite
LOCK_READ = 0
TENSOR_TYPE_BYTES = 512  # room for a LiteRtRankedTensorType, which is only passed through
LAYOUT_BYTES = 256  # room for a LiteRtLayout (68 bytes in LiteRT 2.x)


class LiteRtError(Exception):
    """A LiteRT C API call that did not succeed: the call and its status."""


def library():
    """libLiteRt.so of the installed ai-edge-litert, or LiteRtError saying why not."""
    try:
        import ai_edge_litert
    except ImportError:
        raise LiteRtError("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
    path = os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so")
    if not os.path.isfile(path):
        raise LiteRtError("this ai-edge-litert has no libLiteRt.so, which holds LiteRT's profiler")
    return C.CDLL(path)


class Api:
    """The C functions used, each checked: a status other than kLiteRtStatusOk raises LiteRtError naming it."""

    def __init__(self, lib):
        self.lib = lib

    def __getattr__(self, name):
        fn = getattr(self.lib, name)
        fn.restype = C.c_int

        def call(*args):
            status = fn(*args)
            if status != 0:
                raise LiteRtError("%s returned status %d" % (name, status))
        return call


def _cstring(text):
    buf = C.create_string_buffer(text.encode())
    return buf, C.cast(buf, P)


def _set_dims(tensor_type, shape):
    """Write `shape` into a LiteRtRankedTensorType read from the model (which holds the model's own shape): its
    layout is {element type: int32; rank: 7 bits, has_strides: 1 bit; dimensions: int32[8]; ...}. Checked first
    against what it already holds, so that another layout is an error rather than a wrong buffer."""
    head = C.c_uint32.from_buffer(tensor_type, 4).value
    dims = (C.c_int32 * 8).from_buffer(tensor_type, 8)
    if head & 0x7F != len(shape) or any(d < -1 for d in dims[:len(shape)]):
        raise LiteRtError("this LiteRT's tensor type is not laid out as Studio reads it (rank %d, dimensions %s"
                          " for a %s tensor)" % (head & 0x7F, list(dims[:head & 0x7F]), list(shape)))
    for i, s in enumerate(shape):
        dims[i] = int(s)


KEEP = C.CFUNCTYPE(None, P)(lambda p: None)  # the payloads below are owned here, kept alive by the session


class Session:
    """One compiled model with the profiler on, its input and output buffers bound once."""

    def __init__(self, path, threads):
        self.api = api = Api(library())
        self._keep = []
        self.env, self.model, self.options, self.compiled = P(), P(), P(), P()
        try:
            api.LiteRtCreateEnvironment(C.c_int(0), None, C.byref(self.env))
            api.LiteRtCreateModelFromFile(self.env, path.encode(), C.byref(self.model))
            api.LiteRtCreateOptions(C.byref(self.options))
            api.LiteRtSetOptionsHardwareAccelerators(self.options, C.c_int(HW_CPU))
            self._add_options("runtime_options_string", "enable_profiling = true\n")
            self._add_options("xnnpack", "num_threads = %d\n" % int(threads))
            api.LiteRtCreateCompiledModel(self.env, self.model, self.options, C.byref(self.compiled))
            self.signature = P()
            api.LiteRtGetModelSignature(self.model, SIZE(0), C.byref(self.signature))
            self.input_names = self._tensor_names("Input")
            self.output_names = self._tensor_names("Output")
        except LiteRtError:
            self.close()  # what was made before the failing call
            raise

    def _add_options(self, identifier, toml):
        buf, payload = _cstring(toml)
        ident, _ = _cstring(identifier)
        opaque = P()
        self.api.LiteRtCreateOpaqueOptions(ident, payload, KEEP, C.byref(opaque))
        self.api.LiteRtAddOpaqueOptions(self.options, opaque)
        self._keep += [buf, ident]

    def _tensor_names(self, side):
        count = SIZE()
        getattr(self.api, "LiteRtGetNumSignature%ss" % side)(self.signature, C.byref(count))
        names = []
        for k in range(count.value):
            name = C.c_char_p()
            self.api.LiteRtGetTensorName(self._tensor(side, k), C.byref(name))
            names.append((name.value or b"").decode("utf-8", "replace"))
        return names

    def bind(self, feeds, output_shapes):
        """Input buffers holding `feeds` (tensor name -> array, each the size the model takes) and output buffers,
        typed at the feeds' shapes and at `output_shapes` (name -> shape; None: the model's own)."""
        for k, name in enumerate(self.input_names):
            dims = (C.c_int * feeds[name].ndim)(*feeds[name].shape)
            try:
                self.api.LiteRtCompiledModelResizeInputTensor(self.compiled, SIZE(0), SIZE(k), dims,
                                                              SIZE(feeds[name].ndim))
            except LiteRtError:
                pass  # a static input: its size is checked below
        layouts = C.create_string_buffer(LAYOUT_BYTES * max(1, len(self.output_names)))  # only written, not read
        self.api.LiteRtGetCompiledModelOutputTensorLayouts(self.compiled, SIZE(0), SIZE(len(self.output_names)),
                                                           layouts, C.c_bool(True))  # outputs take the new shapes
        shapes = output_shapes or {}
        self.inputs, self.outputs = [], []  # filled one by one, so that close() frees what was made
        for k, n in enumerate(self.input_names):
            self.inputs.append(self._buffer("Input", k, feeds[n].shape))
        for k, n in enumerate(self.output_names):
            self.outputs.append(self._buffer("Output", k, shapes.get(n)))
        for (buf, size), name in zip(self.inputs, self.input_names):
            data = feeds[name].tobytes()
            if len(data) != size:
                raise LiteRtError("input %s takes %d bytes, the sample has %d (shape %s, %s)" % (
                    name, size, len(data), list(feeds[name].shape), feeds[name].dtype))
            self._write(buf, data)
        self._in = (P * len(self.inputs))(*[b for b, _ in self.inputs])
        self._out = (P * len(self.outputs))(*[b for b, _ in self.outputs])

    def _tensor(self, side, k):
        """The k-th input or output tensor of the model's signature."""
        tensor = P()
        getattr(self.api, "LiteRtGetSignature%sTensorByIndex" % side)(self.signature, SIZE(k), C.byref(tensor))
        return tensor

    def _buffer(self, side, k, shape):
        reqs, size, buf = P(), SIZE(), P()
        tensor_type = C.create_string_buffer(TENSOR_TYPE_BYTES)
        self.api.LiteRtGetRankedTensorType(self._tensor(side, k), tensor_type)
        if shape is not None:
            _set_dims(tensor_type, shape)
        getattr(self.api, "LiteRtGetCompiledModel%sBufferRequirements" % side)(self.compiled, SIZE(0), SIZE(k),
                                                                               C.byref(reqs))
        self.api.LiteRtGetTensorBufferRequirementsBufferSize(reqs, C.byref(size))
        self.api.LiteRtCreateManagedTensorBufferFromRequirements(self.env, tensor_type, reqs, C.byref(buf))
        return buf, size.value

    def _write(self, buf, data):
        addr = P()
        self.api.LiteRtLockTensorBuffer(buf, C.byref(addr), C.c_int(LOCK_WRITE))
        C.memmove(addr, data, len(data))
        self.api.LiteRtUnlockTensorBuffer(buf)

    def read_outputs(self):
        """Each output's bytes, by tensor name."""
        out = {}
        for (buf, size), name in zip(self.outputs, self.output_names):
            addr = P()
            self.api.LiteRtLockTensorBuffer(buf, C.byref(addr), C.c_int(LOCK_READ))
            out[name] = C.string_at(addr, size)
            self.api.LiteRtUnlockTensorBuffer(buf)
        return out

    def close(self):
        """Everything made here, freed (a warm worker profiles many models)."""
        lib = self.api.lib
        for buf, _ in getattr(self, "inputs", []) + getattr(self, "outputs", []):
            lib.LiteRtDestroyTensorBuffer(buf)
        for fn, handle in (("LiteRtDestroyCompiledModel", self.compiled), ("LiteRtDestroyOptions", self.options),
                           ("LiteRtDestroyModel", self.model), ("LiteRtDestroyEnvironment", self.env)):
            if handle.value:
                getattr(lib, fn)(handle)

    def run(self):
        self.api.LiteRtRunCompiledModel(self.compiled, SIZE(0), SIZE(len(self.inputs)), self._in,
                                        SIZE(len(self.outputs)), self._out)

    def profiled(self, runs, warmup):
        """Wall ms of each timed run and LiteRT's profile summary of those runs (the warm-up is left out)."""
        for _ in range(warmup):
            self.run()
        profiler = P()
        self.api.LiteRtCompiledModelGetProfiler(self.compiled, C.byref(profiler))
        if not profiler.value:
            raise LiteRtError("this LiteRT made the model without a profiler")
        self.api.LiteRtResetProfiler(profiler)
        self.api.LiteRtStartProfiler(profiler)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.run()
            times.append((time.perf_counter() - start) * 1000.0)
        self.api.LiteRtStopProfiler(profiler)
        return times, self._summary(profiler)

    def _summary(self, profiler):
        fn = self.api.lib.LiteRtGetProfileSummary
        fn.restype, fn.argtypes = C.c_int, [P, P, C.POINTER(P)]
        text = P()
        status = fn(profiler, self.compiled, C.byref(text))
        try:
            if status != 0 or not text.value:
                raise LiteRtError("LiteRtGetProfileSummary returned status %d" % status)
            return C.string_at(text.value).decode("utf-8", "replace")
        finally:
            if text.value:
                C.CDLL(None).free(text)  # the summary is the caller's, allocated with malloc


def interpreter_facts(path, feeds):
    """What LiteRT's interpreter says of the model: each output's shape when fed `feeds` (a model's own type of a
    dynamic output holds -1, or the shape it was saved with), None where it cannot run it; and op_names()."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError):
        return None, {}
    names = op_names(interpreter)
    try:
        inputs = interpreter.get_input_details()
        for d in inputs:
            interpreter.resize_tensor_input(d["index"], list(feeds[d["name"]].shape))
        interpreter.allocate_tensors()
        for d in inputs:
            interpreter.set_tensor(d["index"], feeds[d["name"]])
        interpreter.invoke()  # an output's shape may depend on the values
    except (ValueError, RuntimeError, KeyError):
        return None, names
    return {d["name"]: tuple(interpreter.get_tensor(d["index"]).shape)
            for d in interpreter.get_output_details()}, names


@contextlib.contextmanager
def native_errors():
    """LiteRT logs its reasons to the process's stderr (fd 2), not in its statuses: a LiteRtError raised inside
    gets the last "ERROR:" line written meanwhile appended."""
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except LiteRtError as exc:
            os.dup2(saved, 2)
            log.seek(0)
            said = [re.sub(r"^ERROR:\s*(\[[^]]*\]\s*)?", "", line).strip()
                    for line in log.read().decode("utf-8", "replace").splitlines() if line.startswith("ERROR:")]
            raise LiteRtError("%s%s" % (exc, ": %s" % said[-1] if said else "")) from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profile(path, feeds, runs, warmup, threads):
    """LiteRT's profile of `path` fed `feeds` (tensor name -> array): a dict of plain values (JSON-ready; "names" as
    op_names() gives them) and, under "outputs", the last run's output bytes by tensor name."""
    with native_errors():
        session = Session(str(path), threads)
    try:
        missing = [n for n in session.input_names if n not in feeds]
        if missing:
            raise LiteRtError("no input given for %s (the model takes %s)" % (", ".join(missing),
                                                                              ", ".join(session.input_names)))
        shapes, names = interpreter_facts(path, feeds)
        with native_errors():
            session.bind(feeds, shapes)
        times, summary = session.profiled(runs, warmup)
        return {"times_ms": times, "summary": summary, "outputs": session.read_outputs(), "names": names,
                "inputs": [[n, [int(d) for d in feeds[n].shape]] for n in session.input_names]}
    finally:
        session.close()


def op_names(interpreter):
    """Each operator of a TFLite graph by its index (as a string, JSON's key), named by its first output tensor, as
    Netron shows it; `interpreter` is a TFLite Interpreter of the model (any of its Python runtimes)."""
    tensors = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    return {str(int(o["index"])): tensors.get(int(o["outputs"][0]), "node %d" % o["index"])
            for o in interpreter._get_ops_details() if len(o["outputs"])}
