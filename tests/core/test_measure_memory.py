"""peak_rss_mb is the model's memory, not the process's: it grows with the weights and ignores what the caller holds."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio.core.base.jobs import run_job
from studio.core.measure.evaluate import measure_latency
from studio.core.measure.latency import LatencyOptions

QUICK = LatencyOptions(runs=5, min_seconds=0.01)


def weights_model(path, n: int) -> str:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, 1)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "m",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_peak_memory_follows_the_model_not_the_caller(tmp_path):
    small = weights_model(tmp_path / "small.onnx", 1_000)
    big = weights_model(tmp_path / "big.onnx", 10_000_000)  # 40 MB of weights
    held = np.ones(256 * 1024 * 1024 // 8)  # the caller holds 256 MB: none of it is the model's
    small_mb = run_job(measure_latency, small, None, QUICK)["peak_rss_mb"]
    big_mb = run_job(measure_latency, big, None, QUICK)["peak_rss_mb"]
    assert held.sum() > 0
    assert small_mb < 40 and big_mb >= 40 and big_mb > small_mb + 30
