"""Preview's quantization debugger in the real window: debug the chosen int8 candidate, see its layers worst first,
keep the worst in float with one click and find the new measured candidate on the chart and in results.json."""
import json
import math
import shutil

from PySide6.QtCore import Qt

from studio.core.app.project import ChosenCandidate
from studio.gui import theme
from tests.gui.conftest import wait_idle

INT8 = "onnx-int8-p0.00"


def test_debug_then_keep_the_worst_layers_in_float(make_window, qtbot, int8_sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(int8_sweep, run)  # this test adds a candidate: to its own copy of the run
    w = make_window()
    w.project.chosen = ChosenCandidate(run_dir=str(run))
    w._show_saved_results(str(run))
    page = w.preview
    page.select("onnx-fp32-p0.00")
    assert not page.debug_button.isEnabled()  # nothing to debug in a float candidate
    page.select(INT8)
    qtbot.mouseClick(page.debug_button, Qt.LeftButton)
    wait_idle(qtbot, w)
    debug = page.debug
    assert debug is not None and debug.candidate == INT8
    assert [r.sqnr_db for r in debug.layers] == sorted(r.sqnr_db for r in debug.layers)
    finite = [r for r in debug.layers if math.isfinite(r.sqnr_db)]
    assert [r.tensor for r in page.debug_chart.layers] == [r.tensor for r in finite]
    page.keep_count.setValue(2)
    chosen = page.chosen_layers()
    assert chosen == tuple(r.node for r in debug.layers[:2])
    brushes = page.debug_chart.bars.opts["brushes"]
    red = [r.tensor for r, b in zip(page.debug_chart.layers, brushes, strict=True) if b.name() == theme.BAD]
    assert red == [r.tensor for r in debug.layers[:2]]
    qtbot.mouseClick(page.keep_button, Qt.LeftButton)
    wait_idle(qtbot, w)
    new = f"{INT8}-float2"
    assert new in page.candidates and page.selected == new
    assert new in [c.id for c in page.chart.candidates]  # a point on the trade-off chart
    rows = {c["id"]: c for c in json.loads((run / "results.json").read_text())["candidates"]}
    assert rows[new]["float_layers"] == list(chosen) and rows[new]["agreement"] >= rows[INT8]["agreement"]


def test_a_tflite_int8_candidate_is_debugged_and_kept_in_float_too(make_window, qtbot, tflite_int8_sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tflite_int8_sweep, run)
    w = make_window()
    w.project.chosen = ChosenCandidate(run_dir=str(run))
    w._show_saved_results(str(run))
    page = w.preview
    page.select("tflite-int8-p0.00")
    assert page.debug_button.isEnabled()
    qtbot.mouseClick(page.debug_button, Qt.LeftButton)
    wait_idle(qtbot, w)
    debug = page.debug
    assert debug is not None and debug.candidate == "tflite-int8-p0.00"
    assert [r.tensor for r in page.debug_chart.layers] == [r.tensor for r in debug.layers if math.isfinite(r.sqnr_db)]
    page.keep_count.setValue(1)
    qtbot.mouseClick(page.keep_button, Qt.LeftButton)
    wait_idle(qtbot, w)
    assert page.selected == "tflite-int8-p0.00-float1" and page.selected in [c.id for c in page.chart.candidates]
