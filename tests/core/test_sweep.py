"""The sweep on real models and data: Pareto flags, resume without redoing work, failures recorded, honest numbers."""
import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from studio.core.base.atomic import json_safe
from studio.core.base.errors import Cancelled, DataError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken
from studio.core.measure.evaluate import evaluate
from studio.core.optimize.stage import FloatStage
from studio.core.recipe.grid import Grid
from studio.core.sweep.records import CandidateFinished, CandidateResult, SensitivityReady, SweepFinished
from studio.core.sweep.results import read_journal
from studio.core.sweep.run_folder import RunFolder
from studio.core.sweep.sweep import SweepError, SweepOptions, run_sweep

SIX = Grid(targets=("onnx",), quant=("none", "dynamic", "int8"), prune=(0.0, 0.5))


@pytest.fixture(scope="module")
def interrupted_then_resumed(samples, tmp_path_factory):
    """The 6-candidate sweep of the PyTorch sample, cancelled after its first finished candidate, then re-run."""
    run = tmp_path_factory.mktemp("sweep") / "run"
    token, first = CancelToken(), []

    finished = []

    def stop_after_first(event):
        if isinstance(event, CandidateFinished):
            first.append(event.candidate.id)
            token.cancel()
        elif isinstance(event, SweepFinished):
            finished.append(event.results)
    with pytest.raises(Cancelled, match="run it again"):
        run_sweep(samples["torch_model"], SIX, samples["dataset"], run, cancel=token, on_event=stop_after_first)
    journal_after_first = read_journal(run / "journal.jsonl")
    mtimes = {i: (run / "candidates" / i / "candidate.json").stat().st_mtime_ns for i in journal_after_first}
    second, events = [], []

    def listen(event):
        events.append(event)
        if isinstance(event, CandidateFinished):
            second.append(event.candidate.id)
    doc = run_sweep(samples["torch_model"], SIX, samples["dataset"], run, options=SweepOptions(sensitivity=True),
                    on_event=listen)
    return {"run": run, "doc": doc, "first": first, "second": second, "journal_after_first": journal_after_first,
            "mtimes": mtimes, "interrupted": finished, "events": events}


def test_resume_skips_finished_candidates(interrupted_then_resumed):
    r = interrupted_then_resumed
    finished_first = set(r["journal_after_first"])
    assert finished_first and set(r["first"]) <= finished_first and len(finished_first) < 6
    assert not finished_first & set(r["second"])  # nothing finished before was redone
    assert sorted(finished_first | set(r["second"])) == sorted(c.id for c in SIX.candidates())
    for i, mtime in r["mtimes"].items():
        assert (r["run"] / "candidates" / i / "candidate.json").stat().st_mtime_ns == mtime
    journal = read_journal(r["run"] / "journal.jsonl")
    assert len(journal) == 6 and all(journal[i] == row for i, row in r["journal_after_first"].items())
    assert len(r["interrupted"]) == 1 and r["interrupted"][0]["interrupted"] is True


def test_events_carry_the_cores_pareto_flags(interrupted_then_resumed):
    events, doc = interrupted_then_resumed["events"], interrupted_then_resumed["doc"]
    finished = [e for e in events if isinstance(e, CandidateFinished)]
    last = finished[-1]
    assert list(last.pareto) == doc["pareto"] and last.best == doc["best"]
    for e in finished:  # each event's own flag agrees with the front it carries
        assert e.candidate.pareto == (e.candidate.id in e.pareto)
    assert isinstance(events[-1], SweepFinished) and events[-1].results == doc
    rows = [CandidateResult.from_dict(c) for c in doc["candidates"]]
    assert [r.to_dict() for r in rows] == doc["candidates"]


def test_six_candidates_pareto_equals_brute_force(interrupted_then_resumed):
    doc = interrupted_then_resumed["doc"]
    rows = doc["candidates"]
    # halving the channels without recovery training breaks the model: the gate says so, the front ignores them
    assert len(rows) == 6 and {c["status"] for c in rows if c["prune_ratio"] == 0.0} == {"ok"}
    assert all(c["status"] == "degraded" and "top-1 agreement" in c["error"] and not c["pareto"]
               for c in rows if c["status"] != "ok")
    for c in rows:
        for key in ("id", "target", "quant", "prune", "prune_ratio", "status", "accuracy", "agreement",
                    "latency_ms_median", "latency_ms_p90", "size_bytes", "pareto", "error", "recipe"):
            assert key in c
        assert c["latency_ms_p90"] >= c["latency_ms_median"] > 0 and c["size_bytes"] > 0

    ok = [c for c in rows if c["status"] == "ok"]

    def dominated(c):
        return any(o["accuracy"] >= c["accuracy"] and o["latency_ms_median"] <= c["latency_ms_median"]
                   and o["size_bytes"] <= c["size_bytes"] and (o["accuracy"], o["latency_ms_median"], o["size_bytes"])
                   != (c["accuracy"], c["latency_ms_median"], c["size_bytes"]) for o in ok)
    assert {c["id"]: c["pareto"] for c in rows} == {c["id"]: c in ok and not dominated(c) for c in rows}
    assert doc["pareto"] == [c["id"] for c in rows if c["pareto"]]
    pruned = {c["quant"]: c for c in rows if c["prune_ratio"] == 0.5}
    whole = {c["quant"]: c for c in rows if c["prune_ratio"] == 0.0}
    assert pruned["none"]["size_bytes"] < 0.5 * whole["none"]["size_bytes"]


def test_fp32_accuracy_equals_an_independent_evaluation(interrupted_then_resumed, samples):
    r = interrupted_then_resumed
    fp32 = next(c for c in r["doc"]["candidates"] if c["id"] == "onnx-fp32-p0.00")
    independent = run_job(evaluate, str(r["run"] / fp32["path"]), samples["dataset"])
    assert fp32["accuracy"] == pytest.approx(independent["top1"], abs=1e-9)
    assert fp32["accuracy"] == pytest.approx(samples["torch_accuracy"], abs=0.01)
    assert r["doc"]["reference"]["accuracy"] == pytest.approx(samples["torch_accuracy"], abs=0.01)
    assert fp32["agreement"] == 100.0


def test_outputs_written(interrupted_then_resumed):
    run = interrupted_then_resumed["run"]
    doc = json.loads((run / "results.json").read_text())
    assert doc == json.loads(json.dumps(interrupted_then_resumed["doc"]))
    csv_lines = (run / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,target,quant,prune,prune_ratio,status,accuracy") and len(csv_lines) == 7
    assert (run / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((run / "candidates" / "onnx-int8-p0.00" / "candidate.json").read_text())
    assert meta["metrics"]["host"]["cpus"] and meta["recipe"]["quantization"]["mode"] == "int8"
    assert sorted(p.name for p in (run / "candidates" / "onnx-int8-p0.00").iterdir()) == ["candidate.json",
                                                                                         "model.onnx"]


def test_sensitivity_is_chart_data(interrupted_then_resumed):
    sens = interrupted_then_resumed["doc"]["sensitivity"]
    quant = sens["quantization"]["layers"]
    assert len(quant) == 5 and all(row["error"] >= 0 and row["sqnr_db"] > 0 for row in quant)
    prune = sens["pruning"]["layers"]
    assert [row["layer"] for row in prune] == ["1", "4", "7", "10"]  # every conv/linear except the classifier
    assert all(row["channels_after"] < row["channels_before"] for row in prune)
    assert max(row["accuracy_drop"] for row in prune) > 0
    ready = [e for e in interrupted_then_resumed["events"] if isinstance(e, SensitivityReady)]
    assert len(ready) == 1 and json.loads(json.dumps(json_safe(ready[0].sensitivity))) == sens


def test_different_sweep_in_the_same_folder_is_refused(interrupted_then_resumed, samples):
    other = Grid(targets=("onnx",), quant=("none",), prune=(0.0,))
    with pytest.raises(SweepError, match="holds a different sweep"):
        run_sweep(samples["torch_model"], other, samples["dataset"], interrupted_then_resumed["run"])


def test_failing_candidates_are_recorded_and_the_sweep_goes_on(shared_models, samples, tmp_path):
    grid = Grid(targets=("onnx", "tflite"), quant=("none", "int8"))
    doc = run_sweep(shared_models / "onnx" / "mnist.onnx", grid, samples["dataset"], tmp_path / "run")
    status = {c["id"]: c["status"] for c in doc["candidates"]}
    assert status == {"onnx-fp32-p0.00": "ok", "onnx-int8-p0.00": "ok", "tflite-fp32-p0.00": "failed",
                      "tflite-int8-p0.00": "failed"}
    failed = next(c for c in doc["candidates"] if c["status"] == "failed")
    assert "not supported for this model because" in failed["error"] and failed["pareto"] is False
    assert doc["best"] in ("onnx-fp32-p0.00", "onnx-int8-p0.00")


def test_label_free_data_and_accuracy_aware_mode(shared_models, samples, tmp_path):
    unlabelled = tmp_path / "x_only.npz"
    np.savez(unlabelled, x=np.load(samples["dataset"])["x"][:300])
    grid = Grid(targets=("onnx",), quant=("none", "int8"))
    doc = run_sweep(shared_models / "onnx" / "mnist.onnx", grid, str(unlabelled), tmp_path / "run",
                    options=SweepOptions(max_drop=0.0, limit=300))
    assert doc["data"]["labelled"] is False and doc["metric"].startswith("top-1 agreement")
    int8 = next(c for c in doc["candidates"] if c["quant"] == "int8")
    assert int8["accuracy"] is None and int8["status"] == "ok" and 0 < int8["agreement"] <= 100
    assert doc["best"] is not None and doc["reference"].get("accuracy") is None


def test_accuracy_aware_quantization_keeps_the_most_sensitive_layers_float(interrupted_then_resumed, samples,
                                                                         tmp_path):
    from studio.core.measure.fidelity import Scoring
    from studio.core.measure.runtimes import open_runner, predict
    from studio.core.measure.scores import score_outputs
    from studio.core.recipe.recipe import Quantization
    from studio.core.sweep.sensitivity import keep_sensitive_float

    fp32 = str(interrupted_then_resumed["run"] / "candidates" / "onnx-fp32-p0.00" / "model.onnx")
    from studio.core.tensors.samples import single
    from studio.core.tensors.shapes import resolve

    arr = np.load(samples["dataset"])["x"].astype(np.float32).reshape(-1, 1, 28, 28)
    x = single(arr, resolve(open_runner(fp32).declared)[0])
    ref = predict(open_runner(fp32), x)
    int8_row = next(c for c in interrupted_then_resumed["doc"]["candidates"] if c["id"] == "onnx-int8-p0.00")
    assert int8_row["agreement"] < 100.0  # plain int8 changes a few predictions of this model

    def agreement(outputs):
        return score_outputs(outputs, None, ref, Scoring(), ["logits"]).value

    kept = keep_sensitive_float(fp32, str(tmp_path / "kept.onnx"), Quantization("int8"), x.head(100), x, None,
                                score=agreement, ref_score=100.0, max_drop=0.0)
    ranked = sorted(kept["sensitivity"]["layers"], key=lambda r: -r["error"])
    assert kept["float_layers"] and kept["float_layers"] == [r["layer"] for r in ranked[:len(kept["float_layers"])]]
    got = agreement(predict(open_runner(str(tmp_path / "kept.onnx")), x))
    assert kept["met"] and got == 100.0


def test_budget_skips_work_and_a_rerun_finishes_it(shared_models, samples, tmp_path):
    grid = Grid(targets=("onnx",), quant=("none", "dynamic", "int8", "fp16"))
    src = shared_models / "onnx" / "mnist.onnx"
    first = run_sweep(src, grid, samples["dataset"], tmp_path / "run", options=SweepOptions(budget_s=0.001,
                                                                                          workers=1))
    assert len(first["candidates"]) < 4 and first["skipped"]
    second = run_sweep(src, grid, samples["dataset"], tmp_path / "run")
    assert len(second["candidates"]) == 4 and not second["skipped"] and not second["pending"]


def test_unlabelled_finetune_data_is_refused_before_any_work_as_optimize_refuses_it(samples, tmp_path):
    unlabelled = tmp_path / "x_only.npz"
    np.savez(unlabelled, x=np.load(samples["train_dataset"])["x"][:50])
    grid = Grid(targets=("onnx",), quant=("none",), prune=(0.0, 0.5), finetune_epochs=1)
    with pytest.raises(DataError, match="fine-tuning needs labelled data"):
        run_sweep(samples["torch_model"], grid, samples["dataset"], tmp_path / "run",
                  options=SweepOptions(finetune=str(unlabelled)))
    assert not (tmp_path / "run").exists()


def test_sensitivity_remakes_a_stage_saved_by_an_older_studio(shared_models, samples, tmp_path):
    grid, src = Grid(targets=("onnx",), quant=("int8",)), shared_models / "onnx" / "mnist.onnx"
    options = SweepOptions(limit=200)
    run_sweep(src, grid, samples["dataset"], tmp_path / "run", options=options)
    saved = RunFolder(tmp_path / "run").stage("onnx", 0.0) / "stage.pkl"
    saved.write_bytes(pickle.dumps({"what": "ONNX -> ONNX", "float": str(src), "ref": None, "modes": ["int8"]}))
    doc = run_sweep(src, grid, samples["dataset"], tmp_path / "run", options=replace(options, sensitivity=True))
    assert len(doc["sensitivity"]["quantization"]["layers"]) > 0 and "notes" not in doc["sensitivity"]
    assert isinstance(pickle.loads(saved.read_bytes()), FloatStage)
