"""A layer selected in Preview's Diff tab is highlighted in the open graph windows: Netron's own selection (read back
from the page) holds the node of that name, or of that output tensor, and the view scrolled to it; a name the model
lacks leaves the window as it was and the tab's line says where to search for it instead."""
from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

from studio.core.look.candidate import CandidateDiff
from studio.core.look.diff import ModelDiff
from studio.core.look.numeric import TensorError
from studio.gui.diff_view import DiffView
from studio.gui.graph_window import GraphState, GraphWindow
from tests.gui.test_graph_window import WEB_ENGINE, open_window

pytestmark = pytest.mark.skipif(not WEB_ENGINE, reason="highlighting needs the built-in view")
CHAIN = 24  # Sigmoids between the first node and the last: the last is drawn below the window's first view
# Netron's state, not Studio's: the model nodes in its view's selection, and each selected box in the SVG with its
# drawn type label and whether it lies inside the visible part of the scrolled graph.
SELECTION_JS = """JSON.stringify({
  selected: Array.from(window.__view__.target.selection).map((e) => e.value && e.value.name),
  boxes: Array.from(document.querySelectorAll('#canvas .select')).filter((e) => e.querySelector('.node-item-type'))
    .map((e) => { const r = e.getBoundingClientRect(), c = document.getElementById('target').getBoundingClientRect();
                  return [e.querySelector('.node-item-type text').textContent,
                          r.top >= c.top && r.bottom <= c.bottom && r.left >= c.left && r.right <= c.right]; })
})"""


def chain(extra: bool = False) -> onnx.ModelProto:
    """x -> Relu 'conv1/Relu' (relu_out) -> CHAIN Sigmoids -> Tanh 'head' (y); `extra`: an Abs 'only_b' after it."""
    nodes = [oh.make_node("Relu", ["x"], ["relu_out"], name="conv1/Relu")]
    nodes += [oh.make_node("Sigmoid", [nodes[-1].output[0] if i == 0 else f"s{i - 1}"], [f"s{i}"], name=f"sig{i}")
              for i in range(CHAIN)]
    nodes.append(oh.make_node("Tanh", [f"s{CHAIN - 1}"], ["t" if extra else "y"], name="head"))
    if extra:
        nodes.append(oh.make_node("Abs", ["t"], ["y"], name="only_b"))
    graph = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


@pytest.fixture
def models(tmp_path):
    """The source and a candidate that has one node more."""
    source, candidate = tmp_path / "source.onnx", tmp_path / "candidates" / "onnx-int8" / "model.onnx"
    candidate.parent.mkdir(parents=True)
    onnx.save(chain(), source)
    onnx.save(chain(extra=True), candidate)
    return source, candidate


def page(qtbot, window: GraphWindow, js: str):
    got = []
    window.view.page().runJavaScript(js, 0, got.append)
    qtbot.waitUntil(lambda: bool(got), timeout=30_000)
    return got[0]


def selection(qtbot, window: GraphWindow) -> dict:
    return json.loads(page(qtbot, window, SELECTION_JS))


def highlight(qtbot, window: GraphWindow, name: str) -> bool:
    with qtbot.waitSignal(window.highlighted, timeout=30_000) as signal:
        window.highlight(name)
    assert signal.args[0] == name
    return signal.args[1]


def test_a_node_is_selected_in_netron_and_scrolled_to(qtbot, models):
    window = open_window(qtbot, models[0])
    assert window.state == GraphState.SHOWN, window.line.text()
    assert selection(qtbot, window) == {"selected": [], "boxes": []}
    assert not selection_visible(qtbot, window, "Tanh")  # the last node starts out of view

    assert highlight(qtbot, window, "head") is True
    assert selection(qtbot, window)["selected"] == ["head"]
    qtbot.waitUntil(lambda: selection(qtbot, window)["boxes"] == [["Tanh", True]], timeout=10_000)  # smooth scroll
    qtbot.wait(1000)  # the compositor draws the scrolled frame a little after the page moved
    window.grab().save("/tmp/netron-highlight.png")

    assert highlight(qtbot, window, "relu_out") is True  # a tensor's name: the node that outputs it
    assert selection(qtbot, window)["selected"] == ["conv1/Relu"]
    qtbot.waitUntil(lambda: selection(qtbot, window)["boxes"] == [["Relu", True]], timeout=10_000)


def selection_visible(qtbot, window: GraphWindow, op: str) -> bool:
    """Whether the box of the one node of type `op` is inside the visible part of the graph."""
    js = SELECTION_JS.replace("'#canvas .select'", "'#canvas .node'").replace(
        ".filter((e) => e.querySelector('.node-item-type'))",
        f".filter((e) => e.querySelector('.node-item-type') && e.textContent.includes('{op}'))")
    [[_, visible]] = [b for b in json.loads(page(qtbot, window, js))["boxes"] if b[0] == op]
    return visible


def test_a_tflite_layer_is_found_by_the_name_the_diff_gives_it(qtbot, shared_models):
    from studio.core.look.graph import read_graph

    path = shared_models / "tflite" / "hello_world_int8.tflite"
    nodes = read_graph(path).nodes  # TFLite has no node names: the diff names a node by its first output tensor
    window = open_window(qtbot, path)
    for node in (nodes[0], nodes[-1]):
        assert highlight(qtbot, window, node.name) is True, node.name
        [box] = selection(qtbot, window)["boxes"]
        assert box[0].replace("_", "").lower() == node.op.replace("_", "").lower()


def test_an_absent_name_is_not_found_and_changes_nothing(qtbot, models):
    window = open_window(qtbot, models[0])
    assert highlight(qtbot, window, "head") is True
    qtbot.waitUntil(lambda: selection(qtbot, window)["boxes"] == [["Tanh", True]], timeout=10_000)
    before = selection(qtbot, window)
    assert highlight(qtbot, window, "only_b") is False
    assert highlight(qtbot, window, "it's \"quoted\"\n") is False  # the name reaches the page as a string
    assert selection(qtbot, window) == before and window.state == GraphState.SHOWN
    assert window.line.text() == ""


def test_a_window_without_the_built_in_view_answers_not_found(qtbot, models):
    def no_web_engine(parent):
        raise ImportError("no QtWebEngine here")

    window = open_window(qtbot, models[0], make_view=no_web_engine)
    assert window.state == GraphState.FALLBACK
    assert highlight(qtbot, window, "head") is False


def a_diff(source, candidate) -> CandidateDiff:
    rows = [TensorError(n, n, n, op, 30.0 - i, 0.99, 0.01) for i, (n, op) in
            enumerate((("conv1/Relu", "Relu"), ("only_b", "Abs"), ("head", "Tanh")))]
    d = ModelDiff(str(source), str(candidate), (), tuple(rows), (), 8, True)
    return CandidateDiff("onnx-int8", str(source), str(candidate), d, ())


def diff_view(qtbot, source, candidate) -> tuple[DiffView, list[GraphWindow]]:
    """A Diff tab showing a_diff, and the list of graph windows it sees as open (none yet)."""
    view = DiffView()
    qtbot.addWidget(view)
    windows: list[GraphWindow] = []
    view.graph_windows = lambda: windows
    view.show_diff(a_diff(source, candidate))
    return view, windows


def test_selecting_a_diff_row_highlights_it_in_both_graphs_or_says_where_it_is_not(qtbot, models):
    source, candidate = models
    view, windows = diff_view(qtbot, source, candidate)
    view.tensors.selectRow(0)
    assert view.layer.text() == "conv1/Relu" and view.layer.isReadOnly()  # the name alone, to copy
    assert view.where.text() == ('no graph of the source or onnx-int8 is open: "Graph" above opens the'
                                 ' candidate\'s, "Show graph" on the Load page the source\'s')

    windows += [open_window(qtbot, source), open_window(qtbot, candidate)]
    other = source.parent / "other.onnx"
    onnx.save(chain(extra=True), other)
    windows.append(open_window(qtbot, other))  # another model's window: left alone
    view.tensors.selectRow(2)
    assert view.where.text() == "looking in the source's graph…; looking in onnx-int8's graph…"
    qtbot.waitUntil(lambda: "…" not in view.where.text(), timeout=30_000)
    assert view.where.text() == "highlighted in the source's graph; highlighted in onnx-int8's graph"
    assert [selection(qtbot, w)["selected"] for w in windows] == [["head"], ["head"], []]

    view.tensors.selectRow(1)
    qtbot.waitUntil(lambda: "…" not in view.where.text(), timeout=30_000)
    assert view.where.text() == ("not found in the source's graph - search for it there;"
                                 " highlighted in onnx-int8's graph")
    assert [selection(qtbot, w)["selected"] for w in windows] == [["head"], ["only_b"], []]


def test_a_graph_still_loading_is_named_in_the_line(qtbot, models):
    source, candidate = models
    view = DiffView()
    qtbot.addWidget(view)
    loading = GraphWindow(str(candidate), "onnx-int8")
    qtbot.addWidget(loading)
    view.graph_windows = lambda: [loading]
    view.show_diff(a_diff(source, candidate))
    assert loading.state == GraphState.LOADING  # not shown: Netron has not drawn it yet
    view.tensors.selectRow(0)
    qtbot.waitUntil(lambda: "…" not in view.where.text(), timeout=10_000)
    assert view.where.text() == "onnx-int8's graph is still being drawn - search for it there"


def test_a_graph_opened_after_the_row_was_chosen_shows_that_layer_once_drawn(qtbot, models):
    source, candidate = models
    view, windows = diff_view(qtbot, source, candidate)
    view.tensors.selectRow(2)
    assert view.layer.text() == "head" and view.where.text().startswith("no graph of the source")
    window = GraphWindow(str(candidate), "onnx-int8")
    qtbot.addWidget(window)
    windows.append(window)
    view.follow(window)
    window.show()
    qtbot.waitUntil(lambda: view.where.text() == "highlighted in onnx-int8's graph", timeout=120_000)
    assert selection(qtbot, window)["selected"] == ["head"]
