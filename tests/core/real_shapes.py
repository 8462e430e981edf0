"""Real-shaped ONNX models built in the test run: the kinds users bring (no downloads).

- a Paddle-style detector: weights in Constant nodes, input [N, 3, H, W] with H and W dynamic;
- a recurrent voice-activity model: inputs `input` [N, 16], `state` [2, N, 8] and an int64 0-d `sr`, with an If;
- a table model without a batch dimension: input [3, 2]."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name))


def paddle_detector(path, seed: int = 0, channels: int = 8) -> str:
    """Conv + Relu + Conv (a probability map at the input's size): the cost grows with H*W, as a detector's does."""
    rng = np.random.default_rng(seed)
    nodes = [
        _const("w1", rng.standard_normal((channels, 3, 3, 3)) * 0.3),
        _const("b1", rng.standard_normal(channels) * 0.1),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        _const("w2", rng.standard_normal((1, channels, 3, 3)) * 0.3),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["maps"]),
    ]
    graph = helper.make_graph(
        nodes, "paddle_det",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, ["N", 1, "H", "W"])])
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="PaddlePaddle")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def recurrent_vad(path, seed: int = 0) -> str:
    """h = tanh(x Wx + state[0] Wh); out = sigmoid(h Wo) * (1 if sr == 16000 else 0.5); new state = [h, state[0]]."""
    rng = np.random.default_rng(seed)
    then_g = helper.make_graph([_const("k1", np.array(1.0))], "then", [],
                               [helper.make_tensor_value_info("k1", TensorProto.FLOAT, [])])
    else_g = helper.make_graph([_const("k2", np.array(0.5))], "else", [],
                               [helper.make_tensor_value_info("k2", TensorProto.FLOAT, [])])
    nodes = [
        helper.make_node("Constant", [], ["rate"], value=numpy_helper.from_array(np.array(16000, np.int64), "rate")),
        helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
        helper.make_node("If", ["is16k"], ["gain"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64), "zero")),
        helper.make_node("Gather", ["state", "zero"], ["s0"], axis=0),
        _const("wx", rng.standard_normal((16, 8)) * 0.3),
        _const("wh", rng.standard_normal((8, 8)) * 0.3),
        _const("wo", rng.standard_normal((8, 1)) * 0.5),
        helper.make_node("MatMul", ["input", "wx"], ["a"]),
        helper.make_node("MatMul", ["s0", "wh"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["ab"]),
        helper.make_node("Tanh", ["ab"], ["h"]),
        helper.make_node("MatMul", ["h", "wo"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p"]),
        helper.make_node("Mul", ["p", "gain"], ["output"]),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([0], np.int64), "axes")),
        helper.make_node("Unsqueeze", ["h", "axes"], ["h3"]),
        helper.make_node("Unsqueeze", ["s0", "axes"], ["s3"]),
        helper.make_node("Concat", ["h3", "s3"], ["stateN"], axis=0),
    ]
    graph = helper.make_graph(
        nodes, "vad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 8])])
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def table_model(path, seed: int = 0) -> str:
    """Input [3, 2] without a batch dimension, output [3, 4]."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["t", "w"], ["y"])], "table",
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], initializer=[w])
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def zipmap_classifier(path, seed: int = 0) -> str:
    """A scikit-learn-style classifier (ai.onnx.ml LinearClassifier + ZipMap) on a table [3, 2] without a batch
    dim: outputs `label` int64 [3] and `probabilities`, a sequence of maps {class: probability}."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                         coefficients=rng.standard_normal(6).astype(float).tolist(), intercepts=[0.1, -0.2, 0.0],
                         classlabels_ints=[0, 1, 2], post_transform="SOFTMAX"),
        helper.make_node("ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2]),
    ]
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = helper.make_graph(
        nodes, "zipmap", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [3]), helper.make_value_info("probabilities", seq)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
