"""Real-shaped ONNX models for the pruning, fp16 and quantization tests, built in the test run: a detector
whose naive fp16 overflows, a model holding its weights in Constant nodes (as Paddle exports them)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inits, inputs, outputs, opset: int = 17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def detector(path, seed: int = 0) -> None:
    """A small detector: conv backbone, Resize x2 (scales), a sigmoid score map, and a heat map head whose
    large-gain Mul (values ~1e5, beyond float16's 65504) goes through Transpose and Reshape, as detector heads do,
    before it is normalised by its own sum."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 2).astype(f), "w1"),
             numpy_helper.from_array(np.zeros(8, f), "b1"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], f), "scales"),
             numpy_helper.from_array((rng.standard_normal((1, 8, 1, 1)) * 0.3).astype(f), "w_score"),
             numpy_helper.from_array(np.array(1e4, f), "gain"),
             numpy_helper.from_array(np.array([1, -1, 8], np.int64), "rows"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "axes")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="backbone"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
             helper.make_node("Resize", ["r1", "", "scales"], ["up"], mode="nearest", name="upsample"),
             helper.make_node("Conv", ["up", "w_score"], ["logit"], name="score_head"),
             helper.make_node("Sigmoid", ["logit"], ["prob"], name="prob"),
             helper.make_node("Mul", ["up", "gain"], ["energy"], name="gain"),
             helper.make_node("Transpose", ["energy"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
             helper.make_node("Reshape", ["nhwc", "rows"], ["cells"], name="to_rows"),
             helper.make_node("ReduceSum", ["cells", "axes"], ["total"], keepdims=1, name="total"),
             helper.make_node("Div", ["cells", "total"], ["heat"], name="normalise")]
    model = _model(nodes, inits, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                   [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1, 64, 64]),
                    helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 4096, 8])])
    onnx.save(model, path)


def _const(name: str, array: np.ndarray):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name), name=f"{name}_const")


def constant_weights(path, seed: int = 0) -> None:
    """A small classifier exported the way Paddle does it: every weight in a Constant node, MatMul + Add for the
    dense layer, a dynamic batch."""
    rng = np.random.default_rng(seed)
    f = np.float32
    nodes = [_const("conv1_weights", (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(f)),
             _const("conv1_bias", (rng.standard_normal(8) * 0.1).astype(f)),
             _const("conv2_weights", (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(f)),
             _const("fc_weights", (rng.standard_normal((16, 10)) * 0.5).astype(f)),
             _const("fc_bias", (rng.standard_normal(10) * 0.1).astype(f)),
             helper.make_node("Conv", ["x", "conv1_weights", "conv1_bias"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "conv2_weights"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="pool"),
             helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "fc_weights"], ["mm"], name="fc"),
             helper.make_node("Add", ["mm", "fc_bias"], ["logits"], name="fc_add")]
    model = _model(nodes, [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])])
    onnx.save(model, path)


def computed_weight(path) -> None:
    """A conv whose weight the graph computes (Identity of an initializer), which onnx2torch cannot take."""
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "conv1_weights_stored")
    nodes = [helper.make_node("Identity", ["conv1_weights_stored"], ["conv1_weights"], name="weights_copy"),
             helper.make_node("Conv", ["x", "conv1_weights"], ["y"], name="conv1")]
    model = _model(nodes, [w], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])])
    onnx.save(model, path)


def run(path, x: np.ndarray) -> list[np.ndarray]:
    """The model's outputs on `x`, one sample at a time, straight from onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]
