"""The quantization debugger on a real sweep run: per-layer errors equal a direct onnxruntime computation, worst
first, and keeping the worst layers in float makes a measured candidate recorded in the run's results."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from studio.core.base.errors import StudioError
from studio.core.sweep.quant_debug import debug_candidate, keep_in_float

INT8, FP32 = "onnx-int8-p0.00", "onnx-fp32-p0.00"


@pytest.fixture(scope="module")
def debugged(int8_sweep):
    return debug_candidate(int8_sweep / INT8)


def _images(samples, n=None):
    x = np.load(samples["dataset"])["x"].astype(np.float32).reshape(-1, 1, 28, 28)
    return x[:n] if n else x


def _run_with_outputs(path, names, x):
    """`path` run by onnxruntime (no graph rewrites) with `names` as its outputs."""
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def _dequantized(model: onnx.ModelProto, tensor: str) -> str:
    """The QDQ model's value of `tensor` as the next layer reads it: QuantizeLinear(tensor) -> DequantizeLinear (a
    graph output keeps its name on the DequantizeLinear)."""
    if any(n.op_type == "DequantizeLinear" and tensor in n.output for n in model.graph.node):
        return tensor
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    return next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]).output[0]


def test_every_layer_error_equals_a_direct_computation_and_the_worst_comes_first(debugged, int8_sweep, samples):
    quantized = str(int8_sweep / "candidates" / INT8 / "model.onnx")
    layers = [r for r in debugged.layers if r.node]  # graph inputs have no node of the float model to read
    assert debugged.samples == 64 and len(layers) >= 5
    x = _images(samples, debugged.samples)
    float_out = _run_with_outputs(str(int8_sweep / "candidates" / FP32 / "model.onnx"),
                                  [r.tensor for r in layers], x)
    qdq = onnx.load(quantized)
    names = {r.tensor: _dequantized(qdq, r.tensor) for r in layers}
    quant_out = _run_with_outputs(quantized, list(names.values()), x)
    mine = {}
    for r in layers:
        f, q = float_out[r.tensor].astype(np.float64).ravel(), quant_out[names[r.tensor]].astype(np.float64).ravel()
        with np.errstate(divide="ignore"):  # an exact tensor: infinite SQNR
            mine[r.tensor] = 10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2))
        assert r.sqnr_db == pytest.approx(mine[r.tensor], abs=0.05), r.tensor
        assert r.cosine == pytest.approx(f @ q / np.linalg.norm(f) / np.linalg.norm(q), abs=1e-6)
        assert r.relative_error == pytest.approx(np.linalg.norm(f - q) / np.linalg.norm(f), rel=1e-3)
    assert debugged.layers[0].tensor == min(mine, key=mine.get)
    assert [r.sqnr_db for r in debugged.layers] == sorted(r.sqnr_db for r in debugged.layers)


def test_keeping_the_worst_layers_in_float_adds_a_measured_candidate_as_good_as_int8(debugged, int8_sweep, samples):
    nodes = tuple(r.node for r in debugged.worst(3))
    added = keep_in_float(int8_sweep / INT8, nodes)
    doc = json.loads((int8_sweep / "results.json").read_text())
    rows = {c["id"]: c for c in doc["candidates"]}
    assert added.id == "onnx-int8-p0.00-float3" and added.id in rows and FP32 in rows and INT8 in rows
    row = rows[added.id]
    assert row["status"] == "ok" and row["float_layers"] == list(nodes) and row["latency_ms_median"] > 0
    assert row["agreement"] >= rows[INT8]["agreement"] and row["accuracy"] >= rows[INT8]["accuracy"] - 0.1
    model, plain = onnx.load(int8_sweep / row["path"]), onnx.load(int8_sweep / rows[INT8]["path"])
    kept = [n for n in model.graph.node if n.name in nodes]
    float_weights = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    weighted = [n for n in kept if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert len(kept) == 3 and weighted and all(n.input[1] in float_weights for n in weighted)

    def quantizers(m):
        return sum(n.op_type == "QuantizeLinear" for n in m.graph.node)
    assert quantizers(model) < quantizers(plain)
    x = _images(samples)
    y = np.load(samples["dataset"])["y"]
    session = ort.InferenceSession(str(int8_sweep / row["path"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0].argmax(1)
    assert row["accuracy"] == pytest.approx(np.mean(got == y) * 100)
    assert (int8_sweep / "candidates" / added.id / "candidate.json").is_file()
    assert sorted(p.name for p in (int8_sweep / "candidates" / added.id).iterdir()) == ["candidate.json", "model.onnx"]


def test_a_candidate_that_is_not_int8_is_refused_with_its_reason(int8_sweep):
    with pytest.raises(StudioError, match="not quantized: the debugger compares an int8"):
        debug_candidate(int8_sweep / FP32)
    with pytest.raises(StudioError, match="is not a candidate of a sweep run"):
        debug_candidate(int8_sweep / "onnx-int8-p0.50")
