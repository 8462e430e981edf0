"""Preview's time per operator in the real window: profile the chosen candidate in the background and see one bar
per operator type that onnxruntime ran; a TFLite candidate's LiteRT profile draws its bars too; a failure shows in the
page."""
from collections import Counter

import onnx
import onnxruntime as ort
from PySide6.QtCore import Qt

from studio.core.app.project import ChosenCandidate
from studio.core.look.profile import ProfileOptions, profile_model
from studio.gui.profile_card import OperatorTimeCard
from tests.core.look_models import write_dynamic_run
from tests.core.tflite_models import ARGMAX, convstack_tflite
from tests.gui.conftest import wait_idle

FP32 = "onnx-fp32-p0.00"


def test_profiling_the_chosen_candidate_draws_a_bar_per_operator_type(make_window, qtbot, tmp_path):
    run = write_dynamic_run(tmp_path)
    w = make_window()
    w.project.chosen = ChosenCandidate(run_dir=str(run))
    w._show_saved_results(str(run))
    w.go(2)  # Preview, where the user clicks
    card = w.preview.profile
    assert not card.button.isEnabled()  # nothing chosen yet
    w.preview.select(FP32)
    qtbot.mouseClick(card.button, Qt.LeftButton)
    wait_idle(qtbot, w)
    report = card.report
    assert report is not None and report.inputs == (("x", (1, 3, 24, 40)),)  # the sample the sweep timed
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(run / "candidates" / FP32 / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    ran = Counter(n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node)
    assert Counter({r.op: r.nodes for r in card.chart.rows}) == ran
    assert list(card.chart.bars.opts["height"]) == [r.ms for r in report.op_types]
    assert card.summary.text().startswith(f"{FP32}: operators ") and "ms measured per run" in card.summary.text()
    (run / "candidates" / FP32 / "model.onnx").write_bytes(b"gone")  # a model that no longer loads
    qtbot.mouseClick(card.button, Qt.LeftButton)
    wait_idle(qtbot, w)
    assert "onnxruntime" in w.preview.banner.text() and "model.onnx" in w.preview.banner.text()
    assert card.report is report  # the last good profile stays


def test_a_tflite_candidate_is_profiled_and_names_what_ran_outside_xnnpack(app, qtbot, tmp_path):
    card = OperatorTimeCard(dark=False)
    qtbot.addWidget(card)
    card.set_candidate("tflite-fp32-p0.00")
    assert card.button.isEnabled() and "Choose a candidate" in card.summary.text()
    report = profile_model(convstack_tflite(tmp_path / "m.tflite"), ProfileOptions(runs=3))
    card.show_profile("tflite-fp32-p0.00", report)
    drawn = [r.op for r in card.chart.rows]
    assert drawn == [o.op for o in report.op_types] and "ARG_MAX" in drawn
    assert "1 node(s) ran outside XNNPACK" in card.summary.text() and report.fallback[0].name == ARGMAX
