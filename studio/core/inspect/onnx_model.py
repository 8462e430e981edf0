"""Inspect an ONNX model: structure, external weights, MACs from shape inference, and whether onnxruntime runs it.

Weights are counted wherever ONNX lets them sit: initializers, sparse initializers and Constant nodes, in the main
graph and in every If/Loop/Scan subgraph."""
from __future__ import annotations

import math
import os
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
    TensorInfo,
    TensorKind,
    histogram,
    readable_name,
    undecodable_name,
)

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


_KINDS = {"tensor_type": TensorKind.TENSOR, "sequence_type": TensorKind.SEQUENCE, "map_type": TensorKind.MAP,
          "optional_type": TensorKind.OPTIONAL}


def _type_word(elem_type: int) -> str:
    import onnx

    return "string" if elem_type == onnx.TensorProto.STRING else _dtype_name(elem_type)  # numpy would say "object"


def _words(type_proto, plural: bool = False) -> str:
    """A value's type in words: 'float32 tensor', 'sequence of maps from int64 to float32'."""
    s = "s" if plural else ""
    which = type_proto.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        sparse = "sparse " if which == "sparse_tensor_type" else ""
        return f"{sparse}{_type_word(getattr(type_proto, which).elem_type)} tensor{s}"
    if which == "sequence_type":
        return f"sequence{s} of {_words(type_proto.sequence_type.elem_type, plural=True)}"
    if which == "map_type":
        value = type_proto.map_type.value_type
        value_words = _type_word(value.tensor_type.elem_type) if value.WhichOneof("value") == "tensor_type" \
            else _words(value, plural=True)
        return f"map{s} from {_type_word(type_proto.map_type.key_type)} to {value_words}"
    if which == "optional_type":
        return f"optional {_words(type_proto.optional_type.elem_type, plural)}"
    return f"value{s} of an undeclared type"


def _element_dtype(type_proto) -> str:
    """The dtype of the numbers inside a value: a tensor's own, a sequence's or optional's element's, a map's values."""
    which = type_proto.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        return _dtype_name(getattr(type_proto, which).elem_type)
    if which in ("sequence_type", "optional_type"):
        return _element_dtype(getattr(type_proto, which).elem_type)
    return _element_dtype(type_proto.map_type.value_type) if which == "map_type" else "undefined"


def _tensor(value_info) -> TensorInfo:
    tp = value_info.type
    kind = _KINDS.get(tp.WhichOneof("value") or "", TensorKind.UNKNOWN)
    if kind == TensorKind.TENSOR:
        return TensorInfo(value_info.name, _shape(tp), _dtype_name(tp.tensor_type.elem_type))
    return TensorInfo(value_info.name, [], _element_dtype(tp), kind=kind, description=_words(tp))


def _readable_names(message) -> None:
    """Replace every string that is not valid UTF-8 (upb hands those over as bytes) by its escaped text, in place,
    so that names print and serialize; the same bytes always escape to the same text, so references still match."""
    from google.protobuf.descriptor import FieldDescriptor

    for fd in message.DESCRIPTOR.fields:  # not ListFields: that would copy every weight's raw bytes
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.is_repeated or message.HasField(fd.name):
                for item in (getattr(message, fd.name) if fd.is_repeated else [getattr(message, fd.name)]):
                    _readable_names(item)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            value = getattr(message, fd.name)
            if not fd.is_repeated and isinstance(value, bytes):
                setattr(message, fd.name, readable_name(value))
            elif fd.is_repeated and any(isinstance(v, bytes) for v in value):
                value[:] = [readable_name(v) for v in value]


def _subgraphs(node):
    import onnx

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from ((attr.name, g) for g in attr.graphs)


def _graphs(graph, where: str = ""):
    """(where, graph) for the graph and every If/Loop/Scan subgraph inside it; where is '' for the main graph,
    else the path of the node holding it, e.g. 'If_0/then_branch/'."""
    yield where, graph
    for i, node in enumerate(graph.node):
        for attr, sub in _subgraphs(node):
            yield from _graphs(sub, f"{where}{node.name or f'{node.op_type}_{i}'}/{attr}/")


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


# where the data and weight inputs sit; quantized kernels (dynamic and QOperator formats) count like float ones
_MAC_OPERANDS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1), "ConvInteger": (0, 1),
                 "MatMulInteger": (0, 1), "QLinearConv": (0, 3), "QLinearMatMul": (0, 3)}


def _macs(model) -> tuple[int | None, dict[str, list]]:
    """Multiply-accumulates for batch 1, from onnx shape inference over Conv, ConvTranspose, Gemm and MatMul."""
    import onnx

    for inp in model.graph.input:  # fix a dynamic batch to 1 so shapes propagate
        dims = inp.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    for out in model.graph.output:  # declared symbolic output shapes would mask the inferred concrete ones
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is best effort
        return None, {}
    shapes = {v.name: _shape(v.type) for v in
              list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    shapes.update({t.name: list(t.dims) for t in inferred.graph.initializer})
    if any(n.op_type in _MAC_OPERANDS for where, g in _graphs(inferred.graph) if where for n in g.node):
        return None, shapes  # work inside If/Loop/Scan depends on the branch taken and the trip count
    total = 0
    for node in inferred.graph.node:
        if node.op_type not in _MAC_OPERANDS:
            continue
        x, w = (_concrete(shapes.get(node.input[i]) if i < len(node.input) else None)
                for i in _MAC_OPERANDS[node.op_type])
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


def _constant_value(node) -> tuple[int, int] | None:
    """(element type, number of values) a Constant node holds, None for integer lists and strings."""
    import onnx

    for a in node.attribute:
        if a.name == "value":
            return a.t.data_type, math.prod(a.t.dims)
        if a.name == "sparse_value":
            return a.sparse_tensor.values.data_type, math.prod(a.sparse_tensor.dims)
        if a.name in ("value_float", "value_floats"):
            return onnx.TensorProto.FLOAT, len(a.floats) if a.name == "value_floats" else 1
    return None


def _stored_tensors(graph) -> dict[str, tuple[int, int]]:
    """Name -> (element type, number of values) of each tensor a graph stores: initializers, sparse initializers
    (counted at their dense size) and Constant nodes."""
    found = {t.name: (t.data_type, math.prod(t.dims)) for t in graph.initializer}
    found.update({s.values.name: (s.values.data_type, math.prod(s.dims)) for s in graph.sparse_initializer})
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            value = _constant_value(node)
            if value is not None:
                found[node.output[0]] = value
    return found


def _weights(graphs) -> tuple[dict[str, int], dict[str, int]]:
    """Weight values per dtype, and per tensor name, over the main graph and its subgraphs."""
    weights: dict[str, int] = {}
    sizes: dict[str, int] = {}
    qparams = {x for _, g in graphs for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
               for x in n.input[1:]}
    for _, graph in graphs:
        for name, (elem_type, n) in _stored_tensors(graph).items():
            dt = _dtype_name(elem_type)
            if dt in ("int64", "object") or name in qparams or name in sizes:
                continue  # shape constants, strings and quantization scales are not weights
            sizes[name] = n
            weights[dt] = weights.get(dt, 0) + n
    return weights, sizes


def _details(model, files: list[str], subgraph_ops: int) -> dict[str, Any]:
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return {"ir_version": model.ir_version, "opset": opsets.get("ai.onnx"), "opset_imports": opsets,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "external_data": files[1:], "subgraph_ops": subgraph_ops}


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

    _readable_names(model)
    graph = model.graph
    graphs = list(_graphs(graph))
    init_names = {t.name for t in graph.initializer}
    inputs = [_tensor(v) for v in graph.input if v.name not in init_names]
    outputs = [_tensor(v) for v in graph.output]
    weights, sizes = _weights(graphs)
    params = sum(sizes.values())
    nodes = [(where, i, n) for where, g in graphs for i, n in enumerate(g.node)]
    ops = histogram((f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type) for *_, n in nodes)
    report(0.6, "inferring shapes")
    macs: int | None = None
    shapes: dict[str, list] = {}
    if sum(os.path.getsize(f) for f in files) < 1_500_000_000:  # protobuf cannot hold 2 GB in memory
        # shape inference reads small constants (Reshape targets), which may live in the external file
        onnx.load_external_data_for_model(model, str(p.parent))
        macs, shapes = _macs(model)
    layers = [LayerInfo(where + (n.name or f"{n.op_type}_{i}"), n.op_type, sum(sizes.get(x, 0) for x in n.input),
                        shapes.get(n.output[0]) if n.output and not where else None) for where, i, n in nodes]
    subgraph_ops = sum(1 for where, *_ in nodes if where)
    return ModelInfo(str(p), "onnx", Framework.ONNX, inputs=inputs, outputs=outputs, params=params,
                     size_bytes=sum(os.path.getsize(f) for f in files), files=files, weight_dtypes=weights, ops=ops,
                     macs=macs, problems=problems, details=_details(model, files, subgraph_ops), layers=layers)


def probe_onnx(path: str, report=ignore) -> list[Problem]:
    """Whether onnxruntime loads the model here; run in its own process because a runtime may crash."""
    from studio.core.measure.runtimes import OnnxRunner

    try:
        OnnxRunner(path)
    except ModelLoadError as exc:
        return [Problem("error", "runtime-refused", exc.message)]
    except UnicodeDecodeError as exc:
        return [undecodable_name("onnxruntime", exc)]
    return []
