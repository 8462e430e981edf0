"""The graph window: Netron draws the model's operators in the built-in view, or, where QtWebEngine cannot start, one
line says why and the button opens the same page in the system browser; closing it closes the server's port."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
import urllib.request
from collections import Counter

import onnx
import pytest
from PySide6.QtGui import QDesktopServices

from studio.core.look.graph_server import TORCH_SAVE_NOTE
from studio.gui.graph_window import GraphState, GraphWindow, prepare_web_engine
from tests.core.look_models import convnet
from tests.gui.conftest import wait_idle

WEB_ENGINE = importlib.util.find_spec("PySide6.QtWebEngineWidgets") is not None
NODE_TYPES_JS = ("JSON.stringify(Array.from(document.querySelectorAll('#canvas .node-item-type'))"
                 ".map(e => e.querySelector('text').textContent))")  # the box's label, not its <title> tooltip


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "convnet.onnx"
    onnx.save(convnet(), path)
    return path


def open_window(qtbot, path, **kwargs) -> GraphWindow:
    window = GraphWindow(str(path), path.name, **kwargs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.state != GraphState.LOADING, timeout=90_000)
    return window


def drawn_types(qtbot, window) -> Counter:
    """The operator types Netron drew: the type row of every node box in the page's SVG."""
    found = []
    window.view.page().runJavaScript(NODE_TYPES_JS, 0, found.append)
    qtbot.waitUntil(lambda: bool(found), timeout=30_000)
    return Counter(json.loads(found[0]))


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def norm(op: str) -> str:
    return op.replace("_", "").lower()  # TFLite's FULLY_CONNECTED is Netron's FullyConnected


def check_drawn(qtbot, window, expected: Counter) -> None:
    """Netron drew each operator of the model as many times as the model has it (its own parser as ground truth)."""
    assert expected, "the ground truth lists no operators"
    if not WEB_ENGINE:  # a PySide6 without QtWebEngine: the fallback, with the reason
        assert window.state == GraphState.FALLBACK and "QtWebEngine" in window.line.text()
        return
    assert window.state == GraphState.SHOWN, window.line.text()
    drawn = Counter({norm(k): v for k, v in drawn_types(qtbot, window).items()})
    assert {op: drawn[norm(op)] for op in expected} == dict(expected)


@pytest.fixture
def requests():
    """Every URL the built-in view's pages request (those its content policy lets through)."""
    if not WEB_ENGINE:
        yield []
        return
    from PySide6.QtWebEngineCore import QWebEngineProfile, QWebEngineUrlRequestInterceptor

    prepare_web_engine()

    class Recorder(QWebEngineUrlRequestInterceptor):
        def __init__(self):
            super().__init__()
            self.urls: list[str] = []

        def interceptRequest(self, info):
            self.urls.append(info.requestUrl().toString())

    recorder = Recorder()
    QWebEngineProfile.defaultProfile().setUrlRequestInterceptor(recorder)
    yield recorder.urls
    QWebEngineProfile.defaultProfile().setUrlRequestInterceptor(None)


def test_an_onnx_models_operators_are_drawn_from_this_server_only(qtbot, onnx_file, requests):
    window = open_window(qtbot, onnx_file)
    check_drawn(qtbot, window, Counter(n.op_type for n in onnx.load(onnx_file).graph.node))
    assert window.line.text() == ""
    if WEB_ENGINE:
        assert window.server.data_url in {u.split("?")[0] for u in requests}  # Netron read the model from Studio
        assert [u for u in requests if not u.startswith(window.server.url)] == []  # and asked nothing else
    port = window.server.port
    window.close()
    assert port_closed(port)


def test_a_tflite_models_operators_are_drawn(qtbot, shared_models):
    from ai_edge_litert.interpreter import Interpreter

    path = shared_models / "tflite" / "hello_world_int8.tflite"
    ops = Counter(op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details())
    check_drawn(qtbot, open_window(qtbot, path), ops)


def test_a_state_dict_shows_its_weights_and_says_so(qtbot, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    window = open_window(qtbot, path)
    assert window.state == (GraphState.SHOWN if WEB_ENGINE else GraphState.FALLBACK)
    assert window.line.text() == TORCH_SAVE_NOTE and window.line.isVisible()


@pytest.mark.skipif(not WEB_ENGINE, reason="Netron's own error needs the built-in view")
def test_a_file_netron_cannot_read_is_one_line(qtbot, tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)  # passes the extension and first-byte check, not Netron's parser
    window = open_window(qtbot, path)
    assert window.state == GraphState.FAILED
    assert window.line.text().startswith(f"{path}: Netron cannot show this model (")
    assert "\n" not in window.line.text()


def test_without_qtwebengine_one_line_and_the_browser_button(qtbot, onnx_file, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()))

    def no_web_engine(parent):
        raise ImportError("libQt6WebEngineCore.so.6: cannot open shared object file")

    window = open_window(qtbot, onnx_file, make_view=no_web_engine)
    assert window.state == GraphState.FALLBACK and window.view is None
    assert window.line.text() == ("The built-in graph view cannot start here (QtWebEngine: libQt6WebEngineCore.so.6:"
                                  " cannot open shared object file): open the graph in your browser instead.")
    assert window.browser.isEnabled()
    window.browser.click()
    assert opened == [window.server.url]
    with urllib.request.urlopen(opened[0], timeout=10) as page:  # what the browser gets is Netron's page
        assert b"<title>Netron</title>" in page.read()
    port = window.server.port
    window.close()
    assert port_closed(port)


@pytest.mark.skipif(not WEB_ENGINE, reason="needs the built-in view")
def test_a_crashed_renderer_falls_back_to_the_browser(qtbot, onnx_file):
    from PySide6.QtCore import QUrl

    window = open_window(qtbot, onnx_file)
    assert window.state == GraphState.SHOWN
    window.view.load(QUrl("chrome://crash"))  # Chromium's own way to crash a renderer
    qtbot.waitUntil(lambda: window.state == GraphState.FALLBACK, timeout=30_000)
    assert window.view.isHidden() and window.browser.isEnabled()
    assert window.line.text().startswith("The built-in graph view's renderer stopped (")
    assert window.line.text().endswith("): open the graph in your browser instead.")


def test_the_load_page_opens_the_graph_and_the_main_window_closes_it(make_window, qtbot, onnx_file):
    w = make_window()
    w.load_model(str(onnx_file))
    wait_idle(qtbot, w)
    assert w.load.graph.isVisible() and not w.graph_windows()
    w.load.graph.click()
    [window] = w.graph_windows()
    assert window.server.model == onnx_file.resolve()
    qtbot.waitUntil(lambda: window.state != GraphState.LOADING, timeout=90_000)
    port = window.server.port
    w.close()
    assert port_closed(port)


def test_the_preview_header_opens_the_chosen_candidates_graph(make_window, qtbot, onnx_file, tmp_path):
    from studio.core.sweep.run_folder import RunFolder
    from tests.gui.test_pages import _results, _rows

    run = RunFolder(tmp_path / "run")
    run.candidate("onnx-c1").mkdir(parents=True)
    model = run.candidate("onnx-c1") / "model.onnx"
    model.write_bytes(onnx_file.read_bytes())
    doc = _results(_rows())
    run.results.write_text(json.dumps(doc))
    w = make_window()
    w.project.chosen = dataclasses.replace(w.project.chosen, run_dir=str(run.root))
    w.preview.set_results(doc)
    assert not w.preview.graph.isEnabled()  # nothing chosen yet
    w.preview.select("onnx-c1")
    w.preview.graph.click()
    [window] = w.graph_windows()
    assert window.server.model == model.resolve() and window.windowTitle() == "Graph: onnx-c1"
    qtbot.waitUntil(lambda: window.state != GraphState.LOADING, timeout=90_000)
    check_drawn(qtbot, window, Counter(n.op_type for n in onnx.load(model).graph.node))


def test_a_file_that_cannot_be_served_is_one_line_and_no_browser(qtbot, tmp_path):
    gone = tmp_path / "gone.onnx"
    window = open_window(qtbot, gone)
    assert window.state == GraphState.FAILED and window.server is None and window.view is None
    assert window.line.text() == f"{gone}: file not found"
    assert not window.browser.isEnabled()


KERAS_MODEL = """
import sys, keras
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(2)])
model.save(sys.argv[1])
model.save(sys.argv[2])
"""


def keras_layers(config: dict) -> Counter:
    """The layer classes a Keras model config lists (the input layer is drawn as the graph's input, not a node)."""
    layers = config["config"]["layers"]
    return Counter(layer["class_name"] for layer in layers if layer["class_name"] != "InputLayer")


@pytest.mark.slow
def test_keras_models_operators_are_drawn(qtbot, tmp_path):
    import subprocess
    import sys
    import zipfile

    import h5py

    keras_file, h5_file = tmp_path / "net.keras", tmp_path / "net.h5"
    subprocess.run([sys.executable, "-c", KERAS_MODEL, str(keras_file), str(h5_file)], check=True, timeout=300,
                   capture_output=True)  # TensorFlow in its own process: it and torch have crashed together
    with zipfile.ZipFile(keras_file) as archive:
        check_drawn(qtbot, open_window(qtbot, keras_file), keras_layers(json.loads(archive.read("config.json"))))
    with h5py.File(h5_file) as h5:
        config = json.loads(h5.attrs["model_config"])
    check_drawn(qtbot, open_window(qtbot, h5_file), keras_layers(config))
