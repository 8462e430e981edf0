"""Preview's Diff tab in the real window: the chosen int8 candidate against its float source shows every Q/DQ node
the quantizer inserted, the per-layer SQNR rows of the core diff, and as thumbnails exactly the samples on which the
two models' top classes differ; a failure shows in the page's banner."""
import numpy as np
import onnx
import onnxruntime as ort
from PySide6.QtCore import Qt

from studio.core.app.project import ChosenCandidate
from studio.core.look.diff import DiffOptions, diff_models
from studio.gui.diff_view import DiffView
from studio.gui.graph_window import GraphState
from tests.core.look_models import write_int8_run
from tests.gui.conftest import wait_idle

INT8 = "onnx-int8-p0.00"
QDQ = ("QuantizeLinear", "DequantizeLinear")


def _column(table, c):
    return [table.item(r, c).text() for r in range(table.rowCount())]


def _compare(w, qtbot, view: DiffView) -> None:
    qtbot.mouseClick(view.button, Qt.LeftButton)
    wait_idle(qtbot, w)


def test_the_diff_tab_shows_inserted_qdq_layer_sqnr_and_the_disagreeing_samples(make_window, qtbot, tmp_path):
    run = write_int8_run(tmp_path)
    w = make_window()
    w.project.chosen = ChosenCandidate(run_dir=str(run))
    w._show_saved_results(str(run))
    w.go(2)
    view = w.preview.diff
    assert not view.button.isEnabled()  # nothing chosen yet
    w.preview.select(INT8)
    w.preview.tabs.setCurrentWidget(view)
    _compare(w, qtbot, view)
    assert view.result is not None, w.preview.banner.text()

    candidate = run / "candidates" / INT8 / "model.onnx"
    nodes = onnx.load(candidate).graph.node
    inserted = sorted(n.name for n in nodes if n.op_type in QDQ)
    rows = list(zip(_column(view.ops, 0), _column(view.ops, 1), _column(view.ops, 2), strict=True))
    assert sorted(name for change, name, _ in rows if change == "inserted qdq") == inserted and inserted
    assert {op for change, _, op in rows if change == "inserted qdq"} == set(QDQ)

    truth = diff_models(tmp_path / "convnet.onnx", candidate, DiffOptions(data=str(tmp_path / "named.npz"),
                                                                          samples=64))
    assert _column(view.tensors, 0) == [t.node for t in truth.tensors] and truth.tensors
    assert _column(view.tensors, 2) == [f"{t.sqnr_db:.2f}" for t in truth.tensors]
    assert [t.sqnr_db for t in truth.tensors] == sorted(t.sqnr_db for t in truth.tensors)  # worst first

    x = np.load(tmp_path / "named.npz")["x"]
    top_a = ort.InferenceSession(str(tmp_path / "convnet.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0].argmax(1)
    top_b = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].argmax(1)
    disagree = [int(i) for i in np.flatnonzero(top_a != top_b)][:24]
    items = [view.samples.item(i) for i in range(view.samples.count())]
    assert [it.data(Qt.UserRole) for it in items] == disagree and disagree
    for it in items:
        i = it.data(Qt.UserRole)
        assert not it.icon().isNull()  # a 3x16x16 NCHW image
        assert it.text() == f"#{i}\nsource class-{top_a[i]}\ncandidate class-{top_b[i]}"
    assert view.samples_note.text().startswith(f"{len(disagree)} of {len(x)} samples get another top class")

    view.tensors.selectRow(len(truth.tensors) - 1)
    assert view.layer.text() == truth.tensors[-1].node and view.layer.isReadOnly()
    assert view.where.text().startswith(f"no graph of the source or {INT8} is open")
    graph = w.show_candidate_graph(INT8)  # the layer is then highlighted in the candidate's graph window
    qtbot.waitUntil(lambda: graph.state != GraphState.LOADING, timeout=90_000)
    view.tensors.selectRow(0)
    qtbot.waitUntil(lambda: "…" not in view.where.text(), timeout=30_000)
    assert view.where.text() == (f"highlighted in {INT8}'s graph" if graph.state == GraphState.SHOWN else
                                 f"{INT8}'s graph is in the browser - search for it there")
    graph.close()

    candidate.write_bytes(b"gone")  # a model that no longer loads
    _compare(w, qtbot, view)
    assert w.preview.banner.isVisible() and "model.onnx" in w.preview.banner.text()
