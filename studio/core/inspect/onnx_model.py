"""Inspect an ONNX model: structure, external weights, MACs from shape inference, and whether onnxruntime runs it."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from studio.core.base.errors import ModelLoadError, short
from studio.core.base.progress import ignore
from studio.core.inspect.formats import Framework
from studio.core.inspect.modelinfo import Dim, LayerInfo, ModelInfo, Problem, TensorInfo, histogram

MIN_IR_VERSION = 3  # IR 3 introduced opset imports; onnx.checker and onnxruntime refuse anything older


def _dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # noqa: BLE001 - unknown or undefined element type
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "undefined"


def _shape(type_proto) -> list[Dim]:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    dims: list[Dim] = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def _tensor(value_info) -> TensorInfo:
    return TensorInfo(value_info.name, _shape(value_info.type), _dtype_name(value_info.type.tensor_type.elem_type))


def _check_external_data(model, base: Path, path: Path) -> list[str]:
    """Every external weights file must exist beside the model and be long enough; returns their paths."""
    files: dict[str, int] = {}
    for init in model.graph.initializer:
        if init.data_location != 1:  # TensorProto.EXTERNAL
            continue
        info = {e.key: e.value for e in init.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or base.resolve() not in target.parents:
            raise ModelLoadError(f"external weights of '{init.name}' point outside the model folder ({location!r})",
                                 path)
        if not target.is_file():
            raise ModelLoadError(f"external weights file '{location}' is missing (expected beside the model)", path)
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        files[str(target)] = max(files.get(str(target), 0), end)
    for file, end in files.items():
        if Path(file).stat().st_size < end:
            raise ModelLoadError(f"external weights file '{Path(file).name}' is truncated"
                                 f" ({Path(file).stat().st_size} bytes, needs {end})", path)
    return sorted(files)


def _concrete(shape: list[Dim] | None) -> list[int] | None:
    """The shape when every dimension is known, else None."""
    return [int(d) for d in shape] if shape and all(isinstance(d, int) for d in shape) else None


def _macs(model) -> tuple[int | None, dict[str, list]]:
    """Multiply-accumulates for batch 1, from onnx shape inference over Conv, ConvTranspose, Gemm and MatMul."""
    import onnx

    for inp in model.graph.input:  # fix a dynamic batch to 1 so shapes propagate
        dims = inp.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    for out in model.graph.output:  # declared symbolic output shapes would mask the inferred concrete ones
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort
        return None, {}
    shapes = {v.name: _shape(v.type) for v in
              list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    shapes.update({t.name: list(t.dims) for t in inferred.graph.initializer})
    total = 0
    # where the data and weight inputs sit; quantized kernels (dynamic and QOperator formats) count like float ones
    operands = {"Conv": (0, 1), "ConvTranspose": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1), "ConvInteger": (0, 1),
                "MatMulInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3)}
    for node in inferred.graph.node:
        if node.op_type not in operands:
            continue
        x, w = (_concrete(shapes.get(node.input[i]) if i < len(node.input) else None) for i in operands[node.op_type])
        out = _concrete(shapes.get(node.output[0]))
        if x is None or w is None or out is None:
            return None, shapes
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            total += math.prod(out) * math.prod(w[1:])
        elif node.op_type == "ConvTranspose":
            total += math.prod(x) * math.prod(w[1:])
        elif node.op_type == "Gemm":
            total += math.prod(out) * (x[0] if attrs.get("transA") else x[-1])
        else:
            total += math.prod(out) * x[-1]
    return total, shapes


def _weights(graph) -> tuple[dict[str, int], dict[str, int]]:
    """Weight values per dtype, and per initializer name."""
    weights: dict[str, int] = {}
    sizes: dict[str, int] = {}
    qparams = {x for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for x in n.input[1:]}
    for t in graph.initializer:
        dt = _dtype_name(t.data_type)
        if dt == "int64" or t.name in qparams:  # shape constants and quantization scales are not weights
            continue
        n = math.prod(t.dims)
        sizes[t.name] = n
        weights[dt] = weights.get(dt, 0) + n
    return weights, sizes


def _details(model, files: list[str]) -> dict[str, Any]:
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return {"ir_version": model.ir_version, "opset": opsets.get("ai.onnx"), "opset_imports": opsets,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "external_data": files[1:]}


def inspect_onnx(path: str, report=ignore) -> ModelInfo:
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    report(0.1, "reading ONNX graph")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        reason = short(exc, 120, empty="corrupt or truncated data")
        raise ModelLoadError(f"not a valid ONNX model: protobuf parsing failed ({reason})", p) from None
    if not model.HasField("graph") or not model.graph.node or model.ir_version <= 0:
        raise ModelLoadError("not a valid ONNX model: no graph inside (the file is corrupt or not ONNX)", p)
    if model.ir_version < MIN_IR_VERSION:
        raise ModelLoadError(f"ONNX IR version {model.ir_version} is too old: onnx and onnxruntime need IR version"
                             f" {MIN_IR_VERSION} or newer; re-export the model with a current exporter", p)
    files = [str(p), *_check_external_data(model, p.parent, p)]
    problems: list[Problem] = []
    report(0.3, "checking the model")
    try:
        onnx.checker.check_model(str(p))
    except Exception as exc:  # noqa: BLE001 - checker raises ValidationError and friends
        problems.append(Problem("error", "invalid-model", f"onnx.checker: {short(exc, 300)}"))

    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs = [_tensor(v) for v in graph.input if v.name not in init_names]
    outputs = [_tensor(v) for v in graph.output]
    weights, sizes = _weights(graph)
    params = sum(sizes.values())
    ops = histogram((f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type) for n in graph.node)
    report(0.6, "inferring shapes")
    macs: int | None = None
    shapes: dict[str, list] = {}
    if sum(os.path.getsize(f) for f in files) < 1_500_000_000:  # protobuf cannot hold 2 GB in memory
        # shape inference reads small constants (Reshape targets), which may live in the external file
        onnx.load_external_data_for_model(model, str(p.parent))
        macs, shapes = _macs(model)
    layers = [LayerInfo(n.name or f"{n.op_type}_{i}", n.op_type, sum(sizes.get(x, 0) for x in n.input),
                        shapes.get(n.output[0]) if n.output else None) for i, n in enumerate(graph.node)]
    return ModelInfo(str(p), "onnx", Framework.ONNX, inputs=inputs, outputs=outputs, params=params,
                     size_bytes=sum(os.path.getsize(f) for f in files), files=files, weight_dtypes=weights, ops=ops,
                     macs=macs, problems=problems, details=_details(model, files), layers=layers)


def probe_onnx(path: str, report=ignore) -> list[Problem]:
    """Whether onnxruntime loads the model here; run in its own process because a runtime may crash."""
    from studio.core.measure.runtimes import OnnxRunner

    try:
        OnnxRunner(path)
    except ModelLoadError as exc:
        return [Problem("error", "runtime-refused", exc.message)]
    return []
