"""Open ONNX and TFLite models with the runtimes a device uses (onnxruntime, ai-edge-litert) and run them.

Refusals become ModelLoadError with one clear reason; `inspect` lists the same reason as a problem, so the user
reads the same sentence whether they inspect the model or try to run it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from studio.core.base.errors import ModelLoadError, short
from studio.core.tensors.samples import MAX_BATCH, Samples, gather
from studio.core.tensors.spec import Quantization, TensorInfo


def runtime_version(name: str) -> str:
    dist = {"onnxruntime": "onnxruntime", "ai-edge-litert": "ai-edge-litert"}[name]
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def explain_ort_error(exc: BaseException) -> str:
    text = short(exc, 2000)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"Load model from \S+ failed:", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ ", "", text)  # source locations mean nothing to a user
    text = re.sub(r"onnxruntime::\S+\([^)]*\)\s*", "", text).strip()
    return f"onnxruntime {runtime_version('onnxruntime')} refuses the model: {text[:300]}"


def explain_tflite_error(exc: BaseException) -> str:
    text = short(exc, 2000)
    m = re.search(r"unresolved custom op: (\w+)", text)
    if m:
        return (f"custom op '{m.group(1)}' is not available in ai-edge-litert {runtime_version('ai-edge-litert')}:"
                " the model cannot run without an implementation of that op")
    first = re.split(r"(?<=\.)(?=[A-Z])", text)[0]  # litert repeats one message per tensor: keep the first
    m = re.match(r"(.*?)(Tensor \d+ has invalid quantization parameters)\.?", text)
    if m and m.group(1):
        first = f"{m.group(2)}: {m.group(1).rstrip('. ')}"
    return f"ai-edge-litert {runtime_version('ai-edge-litert')} refuses the model: {first[:300]}"


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: tuple[int, ...]  # dynamic dimensions read as 1
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0
    dynamic_batch: bool = False

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Float data in the float model's domain -> this input's dtype (quantizing with scale/zero point)."""
        if self.dtype.kind in "iu" and self.scale:
            info = np.iinfo(self.dtype)
            return np.clip(np.round(x / self.scale + self.zero_point), info.min, info.max).astype(self.dtype)
        return x.astype(self.dtype, copy=False)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """This output's values as float32 (dequantizing integer outputs)."""
        if self.dtype.kind in "iu" and self.scale:
            return (y.astype(np.float32) - self.zero_point) * np.float32(self.scale)
        return y.astype(np.float32, copy=False)


def ort_options(threads: int = 1):
    """The SessionOptions every timing here uses: `threads` intra-op threads, one inter-op thread, quiet logs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


class OnnxRunner:
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int = 1, options=None, providers: Sequence[str] = ("CPUExecutionProvider",)):
        """`options`: onnxruntime SessionOptions as ort_options(threads) makes them, with more set (profiling)."""
        import onnxruntime as ort

        opts = options or ort_options(threads)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=list(providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private types
            raise ModelLoadError(explain_ort_error(exc), path) from None
        self.path = str(path)
        self.threads = threads
        type_map = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
                    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
                    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}

        def spec(arg):
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in arg.shape)  # batch 1 for dynamic dims
            dynamic = bool(arg.shape) and not (isinstance(arg.shape[0], int) and arg.shape[0] > 0)
            return IOSpec(arg.name, shape, np.dtype(type_map.get(arg.type, np.float32)), dynamic_batch=dynamic)

        try:
            ins, outs = self.session.get_inputs(), self.session.get_outputs()
        except UnicodeDecodeError:
            raise ModelLoadError("onnxruntime loads the model, but its Python API cannot read a tensor name that is"
                                 " not valid UTF-8: rename it (inspect shows it escaped)", path) from None
        self.inputs = [spec(a) for a in ins]
        self.outputs = [spec(a) for a in outs]
        self.declared = [TensorInfo(a.name, [d if isinstance(d, int) and d > 0 else str(d or "?") for d in a.shape],
                                    spec(a).dtype.name) for a in ins]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {i.name: x for i, x in zip(self.inputs, feeds, strict=True)})


class TfliteRunner:
    runtime = "ai-edge-litert"

    def __init__(self, path: str, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - litert raises ValueError or RuntimeError
            raise ModelLoadError(explain_tflite_error(exc), path) from None
        self.path = str(path)
        self.threads = threads

        def spec(d):
            scale, zp = d["quantization"]
            sig = d.get("shape_signature")
            dynamic = sig is not None and len(sig) > 0 and int(sig[0]) == -1
            return IOSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp),
                          dynamic)

        try:
            self._in = self.interpreter.get_input_details()
            self._out = self.interpreter.get_output_details()
        except UnicodeDecodeError:
            raise ModelLoadError("ai-edge-litert loads the model, but its Python API cannot read a tensor name that"
                                 " is not valid UTF-8: rename it (inspect shows it escaped)", path) from None
        self.inputs = [spec(d) for d in self._in]
        self.outputs = [spec(d) for d in self._out]
        self.declared = [_declared(d) for d in self._in]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        it = self.interpreter
        try:
            current = {d["index"]: tuple(d["shape"]) for d in it.get_input_details()}  # after any earlier resize
            if any(tuple(x.shape) != current[d["index"]] for d, x in zip(self._in, feeds, strict=True)):
                for d, x in zip(self._in, feeds, strict=True):
                    it.resize_tensor_input(d["index"], list(x.shape))
                it.allocate_tensors()
            for d, x in zip(self._in, feeds, strict=True):
                it.set_tensor(d["index"], x)
            it.invoke()
        except Exception as exc:  # noqa: BLE001 - litert raises ValueError or RuntimeError
            raise ModelLoadError(explain_tflite_error(exc), self.path) from None
        return [it.get_tensor(d["index"]) for d in self._out]


def _declared(d: dict) -> TensorInfo:
    sig = d.get("shape_signature")
    dims = [int(x) for x in (sig if sig is not None and len(sig) == len(d["shape"]) else d["shape"])]
    scale, zp = d["quantization"]
    q = Quantization([float(scale)], [int(zp)]) if scale else None
    return TensorInfo(d["name"], [x if x > 0 else "?" for x in dims], np.dtype(d["dtype"]).name, q)


def feed_order(runner, samples: Samples) -> list[int]:
    """For each runner input, the index of its value in `samples`."""
    return _order([i.name for i in runner.inputs], samples, runner.path)


def _plain_name(name: str) -> str:
    """A tensor name without what converters add: TFLite's serving_default_ prefix and a :0 suffix."""
    return re.sub(r":\d+$", "", name.removeprefix("serving_default_"))


def _order(names: list[str], samples: Samples, path: str | None = None) -> list[int]:
    """By name (as a converter renamed them, serving_default_x:0 is x), else by position."""
    for rename in (str, _plain_name):
        theirs, ours = [rename(n) for n in names], [rename(n) for n in samples.names]
        if sorted(theirs) == sorted(ours) and len(set(ours)) == len(ours):
            return [ours.index(n) for n in theirs]
    if len(names) != len(samples.names):
        raise ModelLoadError(f"the model takes {len(names)} inputs ({', '.join(names)}), the data has"
                             f" {len(samples.names)} ({', '.join(samples.names)})", path)
    return list(range(len(names)))


def as_array(value) -> np.ndarray:
    """An output as an array: a sequence of maps (scikit-learn's ZipMap) becomes one row of values per map."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return np.asarray([[row[k] for k in sorted(row)] for row in value], np.float32)
    return np.asarray(value)


def predict(runner, samples: Samples) -> list[np.ndarray]:
    """Run every sample through a runner at the resolved shapes; returns float outputs [N, ...] per output."""
    order = feed_order(runner, samples)

    def call(feeds: list[np.ndarray]) -> list[np.ndarray]:
        encoded = [spec.encode(feeds[k]) for spec, k in zip(runner.inputs, order, strict=True)]
        return [spec.decode(as_array(y)) for spec, y in zip(runner.outputs, runner.run(encoded), strict=True)]

    # a converted model may fix the batch the source left open (litert-torch exports batch 1): one sample a run then
    return gather(samples, call, MAX_BATCH if all(i.dynamic_batch for i in runner.inputs) else 1)


def named_feeds(names: list[str], samples: Samples, count: int | None = None,
                dtypes: dict[str, np.dtype] | None = None) -> list[dict[str, np.ndarray]]:
    """The samples as one {input name: value} per run, for calibration readers; matched by name, else by position;
    cast to `dtypes` where given (a TFLite model takes an int64 source input as int32)."""
    order, n = _order(names, samples), min(count or len(samples), len(samples))
    cast = dtypes or {}
    return [{name: np.asarray(feeds[k]).astype(cast[name], copy=False) if name in cast else feeds[k]
             for name, k in zip(names, order, strict=True)}
            for feeds in (samples.sample(i) for i in range(n))]  # one sample a run: calibrators run at batch 1


def timing_feeds(runner, samples: Samples | None) -> list[np.ndarray]:
    """One run's inputs for timing: the first sample at the resolved shapes, else zeros at the model's own."""
    if samples is None:
        return [np.zeros(i.shape, i.dtype) for i in runner.inputs]
    first = samples.first()
    return [spec.encode(first[k]) for spec, k in zip(runner.inputs, feed_order(runner, samples), strict=True)]


def eval_threads(sharing: int = 1) -> int:
    """Runtime threads for evaluating many samples (never for timing): this machine's cores, shared among the
    `sharing` jobs that evaluate at once."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, sharing))


def open_runner(path: str, threads: int = 1):
    """A runner for an .onnx or .tflite file, or ModelLoadError with the runtime's reason."""
    return TfliteRunner(path, threads) if str(path).lower().endswith(".tflite") else OnnxRunner(path, threads)


def zeros_for(runner) -> list[np.ndarray]:
    return timing_feeds(runner, None)
