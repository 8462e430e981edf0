"""Real-shaped ONNX models built with onnx.helper, the way third-party exporters write them, and onnx's own count
of the weights they hold (walked with onnx's API, independently of Studio's inspector)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

OPSET = [oh.make_opsetid("", 17)]
IR = 8  # what onnxruntime 1.x loads


def _model(graph, opsets=OPSET) -> onnx.ModelProto:
    model = oh.make_model(graph, opset_imports=opsets, producer_name="fixture")
    model.ir_version = IR
    onnx.checker.check_model(model)
    return model


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return oh.make_node("Constant", [], [name], value=nh.from_array(array, name))


def paddle_style(h: int | str = "h", w: int | str = "w", seed: int = 0) -> onnx.ModelProto:
    """A Paddle export: every weight in a Constant node (none in initializers), dynamic batch, height and width."""
    rng = np.random.default_rng(seed)
    conv_w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    conv_b = rng.standard_normal(8).astype(np.float32)
    fc_w = rng.standard_normal((8, 10)).astype(np.float32)
    nodes = [
        _const("conv.w", conv_w), _const("conv.b", conv_b), _const("fc.w", fc_w),
        oh.make_node("Constant", [], ["fc.b"], value_floats=[0.5] * 10),
        oh.make_node("Constant", [], ["flat_shape"], value_ints=[-1, 8]),  # a shape, not a weight
        oh.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv2d_0"),
        oh.make_node("Relu", ["c"], ["r"]),
        oh.make_node("GlobalAveragePool", ["r"], ["g"]),
        oh.make_node("Reshape", ["g", "flat_shape"], ["f"]),
        oh.make_node("MatMul", ["f", "fc.w"], ["m"]),
        oh.make_node("Add", ["m", "fc.b"], ["y"]),
    ]
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, h, w])
    y = oh.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])
    return _model(oh.make_graph(nodes, "paddle", [x], [y]))


def if_and_loop() -> onnx.ModelProto:
    """A recurrent-style model: weights in an If's two branches (an initializer and a Constant), a Loop whose body
    holds its own bias, and a sparse initializer in the main graph."""
    rng = np.random.default_rng(1)
    then_w, else_w = (rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
    then_g = oh.make_graph([oh.make_node("MatMul", ["x", "then.w"], ["t"], name="then_matmul")], "then", [],
                           [oh.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
                           initializer=[nh.from_array(then_w, "then.w")])
    else_g = oh.make_graph([_const("else.w", else_w),
                            oh.make_node("MatMul", ["x", "else.w"], ["e"], name="else_matmul")], "else", [],
                           [oh.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    body = oh.make_graph(
        [oh.make_node("Add", ["h_in", "body.b"], ["h_out"]), oh.make_node("Identity", ["c_in"], ["c_out"])], "body",
        [oh.make_tensor_value_info("i", TensorProto.INT64, []), oh.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         oh.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         oh.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 4])],
        initializer=[nh.from_array(np.full((1, 4), 0.25, np.float32), "body.b")])
    sparse = oh.make_sparse_tensor(nh.from_array(np.array([1.0, 2.0], np.float32), "scale.sparse"),
                                   nh.from_array(np.array([0, 3], np.int64), "scale.idx"), [1, 4])
    nodes = [
        oh.make_node("If", ["cond"], ["branch"], then_branch=then_g, else_branch=else_g, name="gate"),
        oh.make_node("Loop", ["trips", "", "branch"], ["state"], body=body, name="steps"),
        oh.make_node("Mul", ["state", "scale.sparse"], ["y"]),
    ]
    graph = oh.make_graph(nodes, "rnn", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                                          oh.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          initializer=[nh.from_array(np.array(3, np.int64), "trips")], sparse_initializer=[sparse])
    return _model(graph)


def zipmap_classifier() -> onnx.ModelProto:
    """A scikit-learn style classifier (ai.onnx.ml operators) whose probabilities come out of a ZipMap."""
    nodes = [oh.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                          classlabels_ints=[0, 1, 2], coefficients=[0.1 * i for i in range(6)],
                          intercepts=[0.0, 0.1, 0.2], post_transform="SOFTMAX"),
             oh.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2])]
    prob_type = oh.make_sequence_type_proto(oh.make_map_type_proto(TensorProto.INT64,
                                                                   oh.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = oh.make_graph(nodes, "sklearn", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [oh.make_tensor_value_info("label", TensorProto.INT64, [1]),
                           oh.make_value_info("probabilities", prob_type)])
    return _model(graph, [*OPSET, oh.make_opsetid("ai.onnx.ml", 3)])


def microsoft_opset() -> onnx.ModelProto:
    """An onnxruntime-optimized model: a com.microsoft operator, and that domain's opset import."""
    w = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "w"], ["m"]),
             oh.make_node("Gelu", ["m"], ["y"], domain="com.microsoft")]
    graph = oh.make_graph(nodes, "ms", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                          initializer=[nh.from_array(w, "w")])
    return _model(graph, [*OPSET, oh.make_opsetid("com.microsoft", 1)])


def _graphs(graph):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            value = oh.get_attribute_value(attr)
            for sub in value if isinstance(value, list) else [value]:
                if isinstance(sub, onnx.GraphProto):
                    yield from _graphs(sub)


def onnx_weight_count(model: onnx.ModelProto) -> int:
    """Values of every stored tensor in every graph, by decoding them with numpy_helper: initializers, sparse
    initializers (at their dense size) and Constant nodes; int64 tensors are shapes and indices, not weights."""
    found: dict[str, np.ndarray] = {}
    for graph in _graphs(model.graph):
        found.update({t.name: nh.to_array(t) for t in graph.initializer})
        for s in graph.sparse_initializer:
            dense = np.zeros(tuple(s.dims), nh.to_array(s.values).dtype)
            dense.flat[nh.to_array(s.indices)] = nh.to_array(s.values)
            found[s.values.name] = dense
        for node in graph.node:
            if node.op_type == "Constant":
                value = oh.get_attribute_value(node.attribute[0])
                found[node.output[0]] = nh.to_array(value) if isinstance(value, onnx.TensorProto) else np.array(value)
    return sum(a.size for a in found.values() if a.dtype != np.int64)


def with_name_bytes(model: onnx.ModelProto, name: str, raw: bytes) -> bytes:
    """The model's file with every occurrence of `name` replaced by `raw`, bytes that need not be valid UTF-8
    (onnx.helper refuses to write such a name, but files from other writers hold them)."""
    assert len(raw) == len(name.encode()), "a name of the same length keeps every length prefix valid"
    data = model.SerializeToString()
    assert data.count(name.encode()) >= 1
    return data.replace(name.encode(), raw)
