"""The sweep's parts alone: candidate rows as results.json holds them, the journal, the scheduler, saved stages."""
import json
import pickle
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from studio.core.base.progress import CancelToken
from studio.core.convert.result import ConvertResult
from studio.core.optimize.stage import FloatStage
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import PruneScope, QuantMode, Recipe
from studio.core.sweep.records import CandidateResult
from studio.core.sweep.results import read_journal
from studio.core.sweep.scheduler import CandidateTask, GroupTask, Scheduler, group_tasks
from studio.core.sweep.sweep import load_stage

RESULTS_V1 = Path(__file__).parent / "data" / "results-v1.json"  # written by the sweep before typed rows


def test_results_written_before_typed_rows_load_and_write_back_the_same():
    doc = json.loads(RESULTS_V1.read_text())
    rows = [CandidateResult.from_dict(c) for c in doc["candidates"]]
    # the same, but for each recipe brought to the current recipe schema (its meaning kept: v1 pruned globally)
    expected = [{**c, "recipe": Recipe.from_dict(c["recipe"]).to_dict()} for c in doc["candidates"]]
    assert [r.to_dict() for r in rows] == expected
    assert [list(r.to_dict()) for r in rows] == [list(c) for c in doc["candidates"]]  # same keys, same order
    assert {r.recipe.pruning.scope for r in rows} == {PruneScope.GLOBAL}
    int8 = next(r for r in rows if r.id == "onnx-int8-p0.00")
    assert int8.quant == "int8" and int8.target == "onnx" and int8.ok and int8.device["median_ms"] > 0
    assert [r.id for r in rows if r.pareto] == doc["pareto"]


def test_a_failed_row_has_no_measured_keys():
    from studio.core.recipe.recipe import Recipe
    from studio.core.sweep.records import CandidateStatus

    row = CandidateResult(id="x", recipe=Recipe(), status=CandidateStatus.FAILED, error="because").to_dict()
    assert "seconds" not in row and "runtime" not in row and "device" not in row and row["status"] == "failed"
    assert CandidateResult.from_dict(row).to_dict() == row


def test_journal_skips_a_line_cut_short(tmp_path):
    doc = json.loads(RESULTS_V1.read_text())
    lines = [json.dumps(c) for c in doc["candidates"]]
    (tmp_path / "journal.jsonl").write_text(lines[0] + "\n" + lines[1][:40] + "\n")
    assert list(read_journal(tmp_path / "journal.jsonl")) == [doc["candidates"][0]["id"]]


def test_a_stage_saved_by_an_older_studio_is_made_again(tmp_path):
    old = tmp_path / "old.pkl"
    old.write_bytes(pickle.dumps({"what": "PyTorch -> ONNX", "float": "x.onnx", "ref": None, "modes": ["none"]}))
    assert load_stage(old) is None
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x05not a pickle")
    assert load_stage(tmp_path / "broken.pkl") is None
    (tmp_path / "converted.onnx").write_bytes(b"")
    new = FloatStage("ONNX -> ONNX", str(tmp_path / "converted.onnx"), None, False, modes=("int8", "none"))
    (tmp_path / "new.pkl").write_bytes(pickle.dumps(new))
    loaded = load_stage(tmp_path / "new.pkl")
    assert loaded is not None and loaded.serves(("none",)) and not loaded.serves(("fp16",))
    # the last Studio kept the route's record as a dict: such a stage is made again, not read by key
    dict_record = replace(new, convert={"steps": [{"name": "tf2onnx", "seconds": 1.0}]})
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps(dict_record))
    assert load_stage(tmp_path / "dict.pkl") is None


def test_a_stage_summary_keeps_only_the_steps_and_survives_pickling():
    ref = [np.arange(6, dtype=np.float32).reshape(2, 3)]
    record = ConvertResult(steps=({"name": "export", "seconds": 0.5},), notes=("n",), ref=ref, ref_before=ref,
                           quantized={QuantMode.FP16: "q.tflite"}, params_before=10, params_after=5, macs_before=7)
    stage = FloatStage("PyTorch -> ONNX", "x.onnx", ref, False, quantized=record.quantized, convert=record)
    back = pickle.loads(pickle.dumps(stage))
    assert back.convert.params_after == 5 and back.convert.quantized == {QuantMode.FP16: "q.tflite"}
    np.testing.assert_array_equal(back.convert.ref_before[0], ref[0])
    kept = back.summary().convert
    assert kept.steps == ({"name": "export", "seconds": 0.5},)
    assert kept.ref is None and kept.notes == () and kept.params_before is None


GRID = Grid(targets=("onnx", "tflite"), quant=("none", "int8"), prune=(0.0, 0.5))


def test_scheduler_runs_groups_then_their_candidates_on_several_workers():
    done, lock = [], threading.Lock()

    def handle(task):
        with lock:
            done.append(task)
        if isinstance(task, GroupTask):
            return [CandidateTask(c, None) for c in task.members]
        return []
    tasks = group_tasks(GRID.candidates())
    assert [t.ids for t in tasks] == [[c.id for c in GRID.candidates() if c.group == g.members[0].group]
                                      for g in tasks] and len(tasks) == 4
    Scheduler(handle, workers=3, deadline=None, cancel=CancelToken()).run(tasks)
    finished = [t.candidate.id for t in done if isinstance(t, CandidateTask)]
    assert sorted(finished) == sorted(c.id for c in GRID.candidates())
    for t in done:  # a candidate only ever runs after its group
        if isinstance(t, CandidateTask):
            group = next(g for g in done if isinstance(g, GroupTask) and t.candidate in g.members)
            assert done.index(group) < done.index(t)


def test_scheduler_skips_what_the_budget_leaves_no_time_for_and_raises_a_workers_error():
    ran = []
    scheduler = Scheduler(lambda t: ran.append(t) or [], workers=2, deadline=0.0, cancel=CancelToken())
    scheduler.run(group_tasks(GRID.candidates()))
    assert not ran and sorted(scheduler.skipped) == sorted(c.id for c in GRID.candidates())

    def boom(task):
        raise RuntimeError("a bug in a handler")
    with pytest.raises(RuntimeError, match="a bug in a handler"):
        Scheduler(boom, workers=2, deadline=None, cancel=CancelToken()).run(group_tasks(GRID.candidates()))


def test_scheduler_stops_starting_tasks_once_cancelled():
    token, ran = CancelToken(), []

    def handle(task):
        ran.append(task)
        token.cancel()
        return []
    Scheduler(handle, workers=1, deadline=None, cancel=token).run(group_tasks(GRID.candidates()))
    assert len(ran) == 1


def test_sensitivity_says_why_a_grid_without_an_unpruned_candidate_has_no_quantization_part(tmp_path):
    from studio.core.sweep.executor import LocalExecutor
    from studio.core.sweep.run_folder import RunFolder
    from studio.core.sweep.scheduler import MeasureGate
    from studio.core.sweep.sweep import SweepOptions, _Sweep

    gate = MeasureGate()
    sweep = _Sweep(None, RunFolder(tmp_path), None, None, options=SweepOptions(), cancel=CancelToken(), deadline=None,
                   train=None, device_bench=None, progress=None, executor=LocalExecutor(gate), gate=gate)
    assert sweep._unpruned_stage(Grid(quant=("int8",), prune=(0.5,))) == "the grid has no unpruned onnx candidate"
