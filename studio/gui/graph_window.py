"""A model's graph in its own window: Netron, served by the core on loopback, in a QWebEngineView; where QtWebEngine
cannot start or its renderer dies, one line saying so and a button that opens the same page in the system browser."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.base.errors import StudioError, short
from studio.core.look.graph_server import GraphServer, serve_graph

POLL_MS = 250  # how often the window asks the page whether Netron has drawn the graph or given up
POLL_LIMIT = 480  # two minutes: a model Netron is still reading after that gets a line instead of a spinner
# The page's state: the classes Netron puts on <body> ("default" = graph drawn, "alert" = an error message).
STATE_JS = ("JSON.stringify([document.body.className,"
            " (document.getElementById('message-text') || {}).innerText || ''])")
# Select and scroll to the node called NAME as Netron's Find sidebar does (its view on window.__view__, the drawn
# graph's model on activeTarget): by node name, else by the name of a value the node outputs (TFLite's values are
# "tensor\nindex"). Leaves the selection alone and answers false where no node matches or Netron refuses.
HIGHLIGHT_JS = """(function (name) {
  try {
    const view = window.__view__, target = view && view.target, graph = view && view.activeTarget;
    if (!target || !graph || !graph.nodes) { return false; }
    const nodes = Array.from(graph.nodes);
    const outputs = (n) => (n.outputs || []).flatMap((a) => Array.isArray(a.value) ? a.value : []);
    const named = (v) => v && typeof v.name === 'string' && v.name.split('\\n').shift() === name;
    const node = nodes.find((n) => n.name === name) || nodes.find((n) => outputs(n).some(named));
    const elements = node ? target.select([node], 'sidebar') : [];
    if (!elements || elements.length === 0) { return false; }
    target.scrollTo(elements);
    return true;
  } catch (e) { return false; }
})(%s)"""


class GraphState(StrEnum):
    LOADING = "loading"
    SHOWN = "shown"  # Netron drew the graph
    FAILED = "failed"  # Netron (or the server) could not open the model: the line says why
    FALLBACK = "fallback"  # no built-in view: the line says why, the button opens the system browser


def prepare_web_engine() -> None:
    """Call before QtWebEngine's first use: as root, Chromium's sandbox cannot start and Chromium then ends the whole
    process, so run it without (the page is Netron from the wheel, on this machine)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")


def web_view(parent: QWidget) -> QWidget:
    """A QWebEngineView; raises where QtWebEngine cannot be imported."""
    prepare_web_engine()
    from PySide6.QtWebEngineWidgets import QWebEngineView

    return QWebEngineView(parent)


class GraphWindow(QWidget):
    """The graph of one model file; closing the window stops its server."""

    state_changed = Signal(str)  # GraphState
    highlighted = Signal(str, bool)  # the name given to highlight(), whether Netron selected a node of that name

    def __init__(self, path: str, title: str, make_view: Callable[[QWidget], QWidget] = web_view,
                 parent: QWidget | None = None):
        super().__init__(parent, Qt.Window)
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.setWindowTitle(f"Graph: {title}")
        self.resize(1100, 800)
        self.state = GraphState.LOADING
        self.server: GraphServer | None = None
        self.view: QWidget | None = None
        self._polls = 0
        self._closed = False
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 8, 8, 8)
        box.addLayout(self._header())
        QApplication.instance().aboutToQuit.connect(self.close)
        try:
            self.server = serve_graph(path)
        except StudioError as exc:
            self._set_state(GraphState.FAILED, exc.one_line())
            return
        self.browser.setEnabled(True)
        self.line.setText(self.server.note or "")
        self._start_view(make_view, box)

    def _header(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.line = QLabel("")
        self.line.setWordWrap(True)
        self.line.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.line, 1)
        self.browser = QPushButton("Open in browser")
        self.browser.setToolTip("Show the same graph in the system's web browser (served on this machine only)")
        self.browser.setEnabled(False)
        self.browser.clicked.connect(self.open_in_browser)
        row.addWidget(self.browser, 0, Qt.AlignTop)
        return row

    def _start_view(self, make_view: Callable[[QWidget], QWidget], box: QVBoxLayout) -> None:
        try:
            view = make_view(self)
        except (ImportError, OSError, RuntimeError) as exc:
            self._fallback(f"The built-in graph view cannot start here (QtWebEngine: {short(exc)})")
            return
        self.view = view
        box.addWidget(view, 1)
        page = view.page()
        page.loadFinished.connect(self._on_load_finished)
        page.renderProcessTerminated.connect(self._on_render_terminated)
        view.load(QUrl(self.server.url))

    @property
    def model(self) -> Path | None:
        """The file Netron reads, resolved; None where it could not be served."""
        return self.server.model if self.server is not None else None

    def highlight(self, name: str) -> None:
        """Select the node `name` (else the node whose output is the tensor `name`) in Netron and scroll to it;
        `highlighted` says whether it did, later (the page answers asynchronously), and in every state."""
        if self._closed or self.state != GraphState.SHOWN or self.view is None:
            QTimer.singleShot(0, self, lambda: self.highlighted.emit(name, False))
            return
        self.view.page().runJavaScript(HIGHLIGHT_JS % json.dumps(name), 0,
                                       lambda found: self._on_highlighted(name, found))

    def _on_highlighted(self, name: str, found: object) -> None:
        if not self._closed:
            self.highlighted.emit(name, found is True)

    def open_in_browser(self) -> None:
        if self.server is not None:
            QDesktopServices.openUrl(QUrl(self.server.url))

    def _on_load_finished(self, ok: bool) -> None:
        if self._closed or self.state != GraphState.LOADING:
            return
        if not ok:
            self._fallback("The built-in graph view could not load the page")
            return
        self._poll()

    def _on_render_terminated(self, status, code: int) -> None:
        from PySide6.QtWebEngineCore import QWebEnginePage

        if not self._closed and status != QWebEnginePage.RenderProcessTerminationStatus.NormalTerminationStatus:
            self._fallback(f"The built-in graph view's renderer stopped ({status.name}, exit code {code})")

    def _poll(self) -> None:
        if not self._closed and self.view is not None:
            self.view.page().runJavaScript(STATE_JS, 0, self._on_page_state)

    def _on_page_state(self, result) -> None:
        if self._closed or self.state != GraphState.LOADING:
            return
        classes, message = json.loads(result) if isinstance(result, str) else ("", "")
        if "default" in classes.split():
            self._set_state(GraphState.SHOWN, self.server.note if self.server else None)
        elif "alert" in classes.split():
            self._set_state(GraphState.FAILED, f"{self.server.model if self.server else ''}: Netron cannot show"
                                               f" this model ({' '.join(message.split()) or 'no reason given'})")
        elif self._polls >= POLL_LIMIT:
            self._set_state(GraphState.FAILED, "Netron did not finish reading the model in two minutes")
        else:
            self._polls += 1
            QTimer.singleShot(POLL_MS, self, self._poll)

    def _fallback(self, why: str) -> None:
        if self.view is not None:
            self.view.hide()
        self.layout().addStretch(1)  # the line and the button stay at the top
        self._set_state(GraphState.FALLBACK, f"{why}: open the graph in your browser instead.")
        self.browser.setObjectName("primary")
        self.browser.style().polish(self.browser)

    def _set_state(self, state: GraphState, line: str | None) -> None:
        self.state = state
        self.line.setText(line or "")
        self.state_changed.emit(state.value)

    def closeEvent(self, event) -> None:
        self._closed = True
        if self.server is not None:
            self.server.stop()
        super().closeEvent(event)
