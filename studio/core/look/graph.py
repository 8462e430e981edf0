"""A model's operators as the diff sees them: name, type, output shapes and dtypes, weight shapes; for ONNX (onnx,
with shape inference) and TFLite (the ai-edge-litert interpreter's own op and tensor tables)."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from studio.core.base.errors import ModelLoadError, short

QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QUANTIZE", "DEQUANTIZE"})
Dims = tuple[int | str, ...]


@dataclass(frozen=True)
class TensorSig:
    name: str
    shape: Dims | None  # None where shape inference could not tell
    dtype: str


@dataclass(frozen=True)
class Node:
    name: str  # ONNX: the node's name (op_index where it has none); TFLite: its first output's tensor name
    op: str
    outputs: tuple[TensorSig, ...]
    weights: tuple[TensorSig, ...]  # the constant inputs (initializers, buffers)

    @property
    def quant(self) -> bool:
        return self.op in QUANT_OPS


@dataclass(frozen=True)
class Graph:
    path: str
    format: str  # "onnx" or "tflite"
    nodes: tuple[Node, ...]


def read_graph(path: str | os.PathLike) -> Graph:
    text = str(path)
    if text.lower().endswith(".onnx"):
        return Graph(text, "onnx", _onnx_nodes(text))
    if text.lower().endswith(".tflite"):
        return Graph(text, "tflite", _tflite_nodes(text))
    raise ModelLoadError("is neither .onnx nor .tflite: diff and profile read ONNX and TFLite models (a Keras or"
                         " PyTorch model can be converted by 'studio optimize' first)", path)


def _onnx_nodes(path: str) -> tuple[Node, ...]:
    import onnx

    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - onnx raises protobuf's DecodeError and OSError
        raise ModelLoadError(f"cannot be read as ONNX ({short(exc, 120)})", path) from None
    with contextlib.suppress(Exception):  # shapes are a help: a model onnx cannot infer still diffs by op
        model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    typed = {v.name: v.type.tensor_type for v in (*g.input, *g.output, *g.value_info)}
    inits = {t.name: TensorSig(t.name, tuple(t.dims), onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name)
             for t in g.initializer}

    def sig(name: str) -> TensorSig:
        t = typed.get(name)
        if t is None or not t.elem_type:
            return TensorSig(name, None, "?")
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim) \
            if t.HasField("shape") else None
        return TensorSig(name, shape, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name)

    return tuple(Node(n.name or f"{n.op_type}_{i}", n.op_type, tuple(sig(o) for o in n.output if o),
                      tuple(inits[x] for x in n.input if x in inits)) for i, n in enumerate(g.node))


def _tflite_nodes(path: str) -> tuple[Node, ...]:
    from studio.core.measure.runtimes import TfliteRunner

    TfliteRunner(path)  # a model the runtime refuses is one line
    it = plain_interpreter(path)
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()  # the interpreter's own op table: type and tensor indices per op, in run order
    produced = {int(i) for op in ops for i in op["outputs"]} | {d["index"] for d in it.get_input_details()}

    def sig(i: int) -> TensorSig:
        d = tensors[i]
        return TensorSig(d["name"], tuple(int(x) for x in d["shape"]), d["dtype"].__name__)

    nodes = []
    for op in ops:
        outs = tuple(sig(int(i)) for i in op["outputs"] if int(i) in tensors)
        weights = tuple(sig(int(i)) for i in op["inputs"] if int(i) >= 0 and int(i) not in produced
                        and int(i) in tensors)
        nodes.append(Node(outs[0].name if outs else f"{op['op_name']}_{op['index']}", op["op_name"], outs, weights))
    return tuple(nodes)


def plain_interpreter(path: str, **options):
    """A LiteRT interpreter without the default XNNPACK delegate: every operator stays a node of its own."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     **options)
    it.allocate_tensors()
    return it
