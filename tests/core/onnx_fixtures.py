"""Real-shaped ONNX models built in the test run: a detector whose naive fp16 overflows, a model holding its
weights in Constant nodes (as Paddle exports them)."""
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
