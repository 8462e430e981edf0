"""The quantization debugger on a real sweep run: per-layer errors equal a direct onnxruntime computation, worst
first, and keeping the worst layers in float makes a measured candidate recorded in the run's results."""
import json
import shutil

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


TFL_INT8, TFL_FP32 = "tflite-int8-p0.00", "tflite-fp32-p0.00"
TFL_SAMPLES = 8


def _tflite_tensors(path, x, names=None):
    """Every named tensor of `path` (or those in `names`) on each image of `x`, read from a plain ai-edge-litert
    interpreter (all tensors kept, no XNNPACK) and dequantized by hand: {name: [N, ...] float64}."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    scale, zero = inp["quantization"]
    got: dict[str, list] = {}
    for image in x:
        v = image.reshape(inp["shape"])
        it.set_tensor(inp["index"], np.clip(np.round(v / scale) + zero, -128, 127).astype(inp["dtype"]) if scale
                      else v.astype(inp["dtype"]))
        it.invoke()
        for d in it.get_tensor_details():
            if d["name"] and np.dtype(d["dtype"]) in (np.float32, np.int8) and (names is None or d["name"] in names):
                s, z = d["quantization"]
                a = it.get_tensor(d["index"]).astype(np.float64)
                got.setdefault(d["name"], []).append((a - z) * s if s else a)
    return {k: np.stack(v) for k, v in got.items()}


@pytest.fixture(scope="module")
def tflite_debugged(tflite_int8_sweep):
    return debug_candidate(tflite_int8_sweep / TFL_INT8, samples=TFL_SAMPLES)


def test_tflite_layer_errors_equal_both_interpreters_run_directly_and_the_worst_comes_first(
        tflite_debugged, tflite_int8_sweep, samples):
    run = tflite_int8_sweep
    x = _images(samples, TFL_SAMPLES)
    ref = _tflite_tensors(run / "candidates" / TFL_FP32 / "model.tflite", x)
    got = _tflite_tensors(run / "candidates" / TFL_INT8 / "model.tflite", x)
    layers = tflite_debugged.layers
    assert tflite_debugged.samples == TFL_SAMPLES and len(layers) >= 8
    assert {"CONV_2D", "FULLY_CONNECTED", "input"} <= {r.op for r in layers}
    mine = {}
    for r in layers:
        f, q = ref[r.tensor].ravel(), got[r.tensor].ravel()
        mine[r.tensor] = 10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2))
        assert r.sqnr_db == pytest.approx(mine[r.tensor], abs=1e-3), r.tensor
        assert r.cosine == pytest.approx(f @ q / np.linalg.norm(f) / np.linalg.norm(q), abs=1e-9)
        assert r.relative_error == pytest.approx(np.linalg.norm(f - q) / np.linalg.norm(f), rel=1e-6)
    assert layers[0].tensor == min(mine, key=mine.get) and layers[0].sqnr_db < 40  # int8 loses somewhere
    assert [r.sqnr_db for r in layers] == sorted(r.sqnr_db for r in layers)


def test_tflite_keep_float_adds_a_measured_candidate_with_those_ops_in_float(tflite_debugged, tflite_int8_sweep,
                                                                               samples, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    run = tmp_path / "run"
    shutil.copytree(tflite_int8_sweep, run)  # this test adds a candidate: to its own copy of the run
    nodes = tuple(r.node for r in tflite_debugged.layers if r.node)[:2]
    added = keep_in_float(run / TFL_INT8, nodes)
    rows = {c["id"]: c for c in json.loads((run / "results.json").read_text())["candidates"]}
    assert added.id == f"{TFL_INT8}-float2" and {TFL_FP32, TFL_INT8, added.id} <= set(rows)
    row, plain = rows[added.id], rows[TFL_INT8]
    assert row["status"] == "ok" and row["float_layers"] == list(nodes) and row["latency_ms_median"] > 0
    assert row["sqnr_db"] >= plain["sqnr_db"] and row["cosine"] >= plain["cosine"]
    assert row["agreement"] >= plain["agreement"] and row["accuracy"] >= plain["accuracy"] - 0.1

    def dtypes(path):
        return {d["name"]: np.dtype(d["dtype"]) for d in Interpreter(model_path=str(path)).get_tensor_details()}
    now, before = dtypes(run / row["path"]), dtypes(run / plain["path"])
    assert all(now[n] == np.float32 and before[n] == np.int8 for n in nodes)
    assert sum(t == np.int8 for t in now.values()) > 0  # the rest stays quantized
    x, y = _images(samples), np.load(samples["dataset"])["y"]
    output = Interpreter(model_path=str(run / row["path"])).get_output_details()[0]["name"]
    scores = _tflite_tensors(run / row["path"], x, {output})[output].reshape(len(x), -1)
    assert row["accuracy"] == pytest.approx(np.mean(scores.argmax(1) == y) * 100)
    assert sorted(p.name for p in (run / "candidates" / added.id).iterdir()) == ["candidate.json", "model.tflite"]
