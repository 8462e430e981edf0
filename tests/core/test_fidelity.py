"""Honest fidelity on any output: per-output metrics, the scoring output respected, a quality gate that refuses
broken results, degraded candidates never on the front, and the recommendation a user wants."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.cli import main
from studio.core.measure.fidelity import Floors, per_output
from studio.core.recipe.grid import Grid
from studio.core.sweep.sweep import SweepOptions, run_sweep


def three_outputs(path, seed=0):
    """A face-detector-like head: boxes [N, 4], landmarks [N, 10] and, last, class probabilities [N, 3]."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
             for n, s in (("w1", (8, 16)), ("wb", (16, 4)), ("wl", (16, 10)), ("wp", (16, 3)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Relu", ["h0"], ["h"]),
             helper.make_node("MatMul", ["h", "wb"], ["boxes"]), helper.make_node("MatMul", ["h", "wl"], ["landmarks"]),
             helper.make_node("MatMul", ["h", "wp"], ["z"]), helper.make_node("Softmax", ["z"], ["face_prob"], axis=1)]
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", k])
                               for n, k in (("boxes", 4), ("landmarks", 10), ("face_prob", 3))], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_agreement_only_for_class_scores_and_metrics_per_output():
    rng = np.random.default_rng(0)
    boxes = rng.standard_normal((50, 4))
    probs = np.exp(rng.standard_normal((50, 3)))
    probs /= probs.sum(1, keepdims=True)
    noisy = [boxes + 0.01, probs[:, ::-1]]  # the boxes barely move; the classes are all swapped
    rows = per_output([boxes, probs], noisy, ["boxes", "face_prob"])
    assert rows[0].top1_agreement is None and not rows[0].class_scores
    expected = float(np.mean(probs.argmax(1) == probs[:, ::-1].argmax(1)) * 100)
    assert rows[1].class_scores and rows[1].top1_agreement == pytest.approx(expected)
    noise = np.sum((boxes - noisy[0]) ** 2)
    assert rows[0].sqnr_db == pytest.approx(10 * np.log10(np.sum(boxes ** 2) / noise), rel=1e-6)
    assert rows[0].max_abs_error == pytest.approx(0.01)
    assert Floors().reason(rows[1]).startswith("output 'face_prob': top-1 agreement")
    assert Floors().reason(rows[0]) == ""


@pytest.fixture(scope="module")
def head_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("head")
    model = three_outputs(root / "head.onnx")
    np.savez(root / "x.npz", x=np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32))
    grid = Grid(quant=("none", "dynamic", "int8"), targets=("onnx",))
    doc = run_sweep(model, grid, str(root / "x.npz"), root / "run", options=SweepOptions(workers=1, limit=64))
    return root, model, doc


def test_the_class_score_output_scores_the_sweep_not_output_zero(head_sweep):
    root, model, doc = head_sweep
    assert doc["metric"] == "top-1 agreement with the original (%)"
    source = ort.InferenceSession(model)
    x = np.load(root / "x.npz")["x"]
    want = source.run(None, {"x": x})
    for row in doc["candidates"]:
        assert row["scoring_output"] == "face_prob"
        assert [f["name"] for f in row["fidelity"]] == ["boxes", "landmarks", "face_prob"]
        assert [f["top1_agreement"] is not None for f in row["fidelity"]] == [False, False, True]
        got = ort.InferenceSession(str(root / "run" / row["path"])).run(None, {"x": x})
        agreement = float(np.mean(want[2].argmax(1) == got[2].argmax(1)) * 100)
        assert row["agreement"] == pytest.approx(agreement) and row["metric_value"] == pytest.approx(agreement)


def test_the_recommendation_is_the_fastest_within_one_point(head_sweep):
    _, _, doc = head_sweep
    ok = [r for r in doc["candidates"] if r["status"] == "ok"]
    within = [r for r in ok if 100.0 - r["metric_value"] <= 1.0]
    assert doc["best"] == min(within, key=lambda r: (r["latency_ms_median"], r["size_bytes"]))["id"]
    assert doc["recommendation"]["bound"] == 1.0 and doc["recommendation"]["met"]


def test_a_gate_no_quantized_candidate_passes_greys_them_out(head_sweep, tmp_path, capsys):
    root, model, _ = head_sweep
    grid = Grid(quant=("none", "int8"), targets=("onnx",))
    from studio.core.measure.fidelity import Scoring

    options = SweepOptions(workers=1, limit=64, scoring=Scoring(output="boxes", floors=Floors(sqnr_db=300.0)))
    doc = run_sweep(model, grid, str(root / "x.npz"), tmp_path / "run", options=options)
    rows = {r["id"]: r for r in doc["candidates"]}
    int8 = rows["onnx-int8-p0.00"]
    assert int8["status"] == "degraded" and "output 'boxes': SQNR" in int8["error"]
    assert int8["latency_ms_median"] is not None and int8["scoring_output"] == "boxes"
    assert "onnx-int8-p0.00" not in doc["pareto"] and doc["best"] == "onnx-fp32-p0.00"
    assert main(["export", str(tmp_path / "run" / "onnx-int8-p0.00"), "-o", str(tmp_path / "d.bundle.zip")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-degraded" in err[0] and not (tmp_path / "d.bundle.zip").exists()
    assert main(["export", str(tmp_path / "run" / "onnx-int8-p0.00"), "-o", str(tmp_path / "d.bundle.zip"),
                 "--allow-degraded"]) == 0


def test_optimize_refuses_a_degraded_result_and_writes_nothing(head_sweep, tmp_path, capsys):
    root, model, _ = head_sweep
    out = tmp_path / "out"
    code = main(["optimize", model, "-o", str(out), "--quant", "int8", "--calib", str(root / "x.npz"),
                 "--min-fidelity", "agreement=100.5"])  # more than any result can reach
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "degraded" in err[0] and "output 'face_prob': top-1 agreement" in err[0]
    assert not out.exists()
    assert main(["optimize", model, "-o", str(out), "--quant", "int8", "--calib", str(root / "x.npz"),
                 "--score-output", "boxes", "--json"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["fidelity"]["scoring_output"] == "boxes" and len(report["fidelity"]["outputs"]) == 3


def test_a_metric_of_your_own_needs_trust_code_and_scores_the_sweep(head_sweep, tmp_path, capsys):
    root, model, _ = head_sweep
    metric = tmp_path / "my_metric.py"
    metric.write_text("import numpy as np\n\ndef box_error(outputs, labels):\n"
                      "    return -float(np.abs(outputs[0]).mean())\n")
    args = ["sweep", model, "--data", str(root / "x.npz"), "-o", str(tmp_path / "run"), "--quant", "none",
            "--target", "onnx", "--metric", f"{metric}:box_error", "--workers", "1"]
    assert main(args) == 1
    assert "--trust-code" in capsys.readouterr().err
    assert main([*args, "--trust-code"]) == 0
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    x = np.load(root / "x.npz")["x"]
    boxes = ort.InferenceSession(model).run(None, {"x": x})[0]
    assert doc["metric"] == f"{metric}:box_error"
    assert doc["candidates"][0]["metric_value"] == pytest.approx(-float(np.abs(boxes).mean()), rel=1e-5)
