"""Inspect a TFLite flatbuffer with its schema (no TensorFlow): tensors, quantization, ops, MACs, custom ops."""
from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.base.errors import ModelLoadError, short
from studio.core.base.progress import ignore
from studio.core.inspect.formats import Framework
from studio.core.inspect.modelinfo import (
    Dim,
    LayerInfo,
    ModelInfo,
    Problem,
    Quantization,
    TensorInfo,
    histogram,
    readable_name,
    undecodable_name,
)


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    """Bounds-checked access to the generated schema classes: corrupt files give errors, never huge loops."""

    def __init__(self, buf: bytes, path: Path):
        self.limit = len(buf)
        self.path = path

    def count(self, n: int, what: str) -> int:
        if n < 0 or n > self.limit:
            raise ModelLoadError(f"corrupt TFLite flatbuffer: {what} count {n} is impossible for a"
                                 f" {self.limit}-byte file", self.path)
        return n


def _quant(t) -> Quantization | None:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = [float(x) for x in q.ScaleAsNumpy()]
    zps = [int(x) for x in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scale)
    return Quantization(scale, zps, int(q.QuantizedDimension()) if len(scale) > 1 else None)


def _tensor_info(t, types: dict[int, str], signature_name: str | None = None) -> TensorInfo:
    shape = [int(x) for x in t.ShapeAsNumpy()] if t.ShapeLength() else []
    sig = [int(x) for x in t.ShapeSignatureAsNumpy()] if t.ShapeSignatureLength() else shape
    dims: list[Dim] = ["?" if s < 0 else d for d, s in zip(shape, sig, strict=True)] if len(sig) == len(shape) \
        else list(shape)
    name = signature_name or readable_name(t.Name() or b"")
    return TensorInfo(name, dims, types.get(t.Type(), "unknown").lower(), _quant(t))


def _macs_of(op: str, ins: list, outs: list, options_adj_x: bool = False) -> int | None:
    """MACs of one operator from its tensor shapes (batch as stored), or None when not a multiply-heavy op."""
    if op == "CONV_2D" and len(ins) >= 2 and outs:
        return math.prod(outs[0]) * math.prod(ins[1][1:])
    if op == "DEPTHWISE_CONV_2D" and len(ins) >= 2 and outs:
        return math.prod(outs[0]) * ins[1][1] * ins[1][2]
    if op == "FULLY_CONNECTED" and len(ins) >= 2 and outs:
        return math.prod(outs[0]) * ins[1][-1]
    if op == "BATCH_MATMUL" and len(ins) >= 2 and outs:
        return math.prod(outs[0]) * (ins[0][-2] if options_adj_x else ins[0][-1])
    if op == "TRANSPOSE_CONV" and len(ins) >= 3:
        return math.prod(ins[2]) * ins[1][0] * ins[1][1] * ins[1][2]
    return None


def _metadata_text(model, key: str, nbuf: int) -> str | None:
    """A string entry of the model's metadata table (the converter records min_runtime_version there)."""
    for i in range(min(model.MetadataLength(), 64)):
        m = model.Metadata(i)
        if readable_name(m.Name() or b"") == key and 0 < m.Buffer() < nbuf:
            raw = model.Buffers(m.Buffer()).DataAsNumpy()
            if hasattr(raw, "tobytes"):
                return raw.tobytes().split(b"\0", 1)[0].decode("ascii", "replace") or None
    return None


def inspect_tflite(path: str, report=ignore) -> ModelInfo:
    from ai_edge_litert import schema_py_generated as schema

    p = Path(path)
    buf = p.read_bytes()
    report(0.2, "reading TFLite flatbuffer")
    try:
        return _inspect(p, buf, schema)
    except ModelLoadError:
        raise
    except (IndexError, struct.error, ValueError, TypeError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        raise ModelLoadError(f"corrupt TFLite flatbuffer ({short(exc, 80)}); the file is"
                             " truncated or damaged", p) from None


def _operator_codes(model, r: _Reader, builtin: dict[int, str]) -> list[tuple[str, str | None]]:
    """(builtin name, custom code) of each operator code; the name is CUSTOM for a custom operator."""
    codes = []
    for i in range(r.count(model.OperatorCodesLength(), "operator code")):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        codes.append((builtin.get(code, f"UNKNOWN_{code}"), readable_name(custom) if custom else None))
    return codes


def _adj_x(op, schema) -> bool:
    """Whether a BATCH_MATMUL transposes its first operand."""
    if op.BuiltinOptions() is None:
        return False
    o = schema.BatchMatMulOptions()
    o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    return bool(o.AdjX())


def _main_io(main, r: _Reader, types: dict[int, str]) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The model's inputs and outputs: those of its first subgraph."""
    nmain = r.count(main.TensorsLength(), "tensor")
    in_idx = [int(x) for x in main.InputsAsNumpy()] if main.InputsLength() else []
    out_idx = [int(x) for x in main.OutputsAsNumpy()] if main.OutputsLength() else []
    if any(i < 0 or i >= nmain for i in in_idx + out_idx):
        raise ModelLoadError("corrupt TFLite flatbuffer: model inputs or outputs refer to missing tensors", r.path)
    tensors = lambda idx: [_tensor_info(main.Tensors(i), types) for i in idx]  # noqa: E731
    return tensors(in_idx), tensors(out_idx)


@dataclass
class _Walk:
    """One pass over a TFLite model's subgraphs: what it reads them with, and what it adds up."""

    model: Any
    r: _Reader
    schema: Any
    codes: list[tuple[str, str | None]]
    types: dict[int, str]
    nbuf: int
    params: int = 0
    weights: dict[str, int] = field(default_factory=dict)
    macs: int = 0
    op_names: list[str] = field(default_factory=list)
    custom_ops: list[str] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)  # those of the first subgraph

    def has_data(self, bi: int) -> bool:
        if bi <= 0 or bi >= self.nbuf:
            return False
        b = self.model.Buffers(bi)
        return b.DataLength() > 0 or b.Offset() > 1

    def subgraph(self, si: int) -> None:
        sg = self.model.Subgraphs(si)
        ntensors = self.r.count(sg.TensorsLength(), "tensor")
        tensors = [sg.Tensors(i) for i in range(ntensors)]
        shapes = [[int(x) for x in t.ShapeAsNumpy()] if t.ShapeLength() else [] for t in tensors]
        for t in tensors:
            if self.has_data(t.Buffer()):
                n = math.prod(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else 1
                self.params += n
                dt = self.types.get(t.Type(), "unknown").lower()
                self.weights[dt] = self.weights.get(dt, 0) + n
        for oi in range(self.r.count(sg.OperatorsLength(), "operator")):
            self.operator(sg.Operators(oi), oi, tensors, shapes, main=si == 0)

    def operator(self, op, oi: int, tensors: list, shapes: list[list[int]], *, main: bool) -> None:
        idx = op.OpcodeIndex()
        if idx >= len(self.codes):
            raise ModelLoadError(f"corrupt TFLite flatbuffer: operator {oi} uses opcode {idx} of {len(self.codes)}",
                                 self.r.path)
        name, custom = self.codes[idx]
        label = f"CUSTOM:{custom}" if name == "CUSTOM" else name
        if name == "CUSTOM":
            self.custom_ops.append(custom or "?")
        self.op_names.append(label)
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        if any(i >= len(tensors) for i in ins + outs):
            raise ModelLoadError(f"corrupt TFLite flatbuffer: operator {oi} refers to a missing tensor", self.r.path)
        in_shapes = [shapes[i] for i in ins if i >= 0]
        out_shapes = [shapes[i] for i in outs if i >= 0]
        m = _macs_of(name, in_shapes, out_shapes, name == "BATCH_MATMUL" and _adj_x(op, self.schema))
        if m is not None:
            self.macs += m
        if main:
            out_name = readable_name(tensors[outs[0]].Name() or b"") if outs else label
            self.layers.append(LayerInfo(out_name, label, sum(math.prod(shapes[i]) for i in ins
                                                              if i >= 0 and self.has_data(tensors[i].Buffer())),
                                         list(out_shapes[0]) if out_shapes else None))


def _inspect(p: Path, buf: bytes, schema) -> ModelInfo:
    r = _Reader(buf, p)
    if len(buf) < 16:
        raise ModelLoadError("corrupt TFLite flatbuffer: file too short", p)
    model = schema.Model.GetRootAs(buf, 0)
    types = _enum_names(schema.TensorType)
    codes = _operator_codes(model, r, _enum_names(schema.BuiltinOperator))
    nsub = r.count(model.SubgraphsLength(), "subgraph")
    if nsub == 0:
        raise ModelLoadError("corrupt TFLite flatbuffer: no subgraph", p)
    walk = _Walk(model, r, schema, codes, types, r.count(model.BuffersLength(), "buffer"))
    for si in range(nsub):
        walk.subgraph(si)
    inputs, outputs = _main_io(model.Subgraphs(0), r, types)
    details = {"schema_version": int(model.Version()), "subgraphs": nsub,
               "min_runtime_version": _metadata_text(model, "min_runtime_version", walk.nbuf),
               "description": readable_name(model.Description() or b""),
               "custom_ops": sorted(set(walk.custom_ops)),
               "builtin_ops": sorted({n for n, c in codes if n != "CUSTOM"})}
    return ModelInfo(str(p), "tflite", Framework.TFLITE, inputs=inputs, outputs=outputs, params=walk.params,
                     size_bytes=len(buf), files=[str(p)], weight_dtypes=walk.weights, ops=histogram(walk.op_names),
                     macs=walk.macs, details=details, layers=walk.layers)


def custom_op_warning(custom_ops: Sequence[str]) -> Problem:
    names = ", ".join(f"'{c}'" for c in custom_ops)
    return Problem("warning", "custom-op", f"uses custom op {names}, which is not a TFLite builtin: a device runtime"
                   " needs its own implementation of it")


def probe_tflite(path: str, custom_ops: Sequence[str] = (), report=ignore) -> list[Problem]:
    """Whether ai-edge-litert runs the model here (in its own process: a runtime may crash on a bad file).

    Custom ops get exactly one problem: refused (error), delegate-only (warning) or provided (warning)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from studio.core.measure.runtimes import TfliteRunner, runtime_version, zeros_for

    try:
        runner = TfliteRunner(path)
        runner.run(zeros_for(runner))
    except ModelLoadError as exc:
        return [Problem("error", "custom-op" if "custom op" in exc.message else "runtime-refused", exc.message)]
    except UnicodeDecodeError as exc:
        return [undecodable_name("ai-edge-litert", exc)]
    if not custom_ops:
        return []
    try:  # does it run only because the default XNNPACK delegate happens to implement the custom op?
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
    except Exception:  # noqa: BLE001
        names = ", ".join(f"'{c}'" for c in custom_ops)
        return [Problem("warning", "custom-op",
                        f"custom op {names} runs here only through ai-edge-litert {runtime_version('ai-edge-litert')}'s"
                        " XNNPACK delegate; a device runtime without XNNPACK fails with 'unresolved custom op'")]
    return [custom_op_warning(custom_ops)]
