"""Preview's Diff tab: the chosen candidate against its source, as `studio diff` computes it: what changed in the
graph, each matched tensor's SQNR and cosine worst first, and the samples on which the two models disagree."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.look.candidate import CandidateDiff
from studio.core.look.diff import ModelDiff
from studio.core.look.graph import Node
from studio.core.look.match import Change, OpDiff
from studio.core.look.numeric import WORST_SAMPLES, SampleDiff

from .graph_window import GraphState, GraphWindow
from .widgets import Card, help_label, thumbnail

IDLE = "Choose a candidate and compare it with the source: operators added, removed and changed, and how far each" \
       " layer's output drifts on the sweep's samples."
OP_COLUMNS = ("Change", "Name", "Operator", "Source -> candidate", "Details")
TENSOR_COLUMNS = ("Layer", "Operator", "SQNR dB", "Cosine")
THUMB = 56
ORDER = (Change.CHANGED, Change.REMOVED, Change.ADDED, Change.INSERTED_QDQ)  # what the user looks for first
# Why a graph window that is not drawn could not highlight the layer.
NOT_DRAWN = {GraphState.LOADING: "is still being drawn", GraphState.FAILED: "could not be drawn",
             GraphState.FALLBACK: "is in the browser"}


@dataclass
class _Asked:
    """A graph window of the source or the candidate asked to highlight the selected layer, and its answer."""
    window: GraphWindow
    label: str  # "the source's graph", "onnx-int8's graph"
    found: bool | None = None  # None until the page answers


class DiffView(Card):
    diff_requested = Signal(str)  # candidate id

    def __init__(self, parent=None):
        super().__init__(None, parent)
        top = QHBoxLayout()
        self.button = QPushButton("Compare with the source")
        self.button.setToolTip("Diff the chosen candidate with the source model on the sweep's samples")
        self.button.setEnabled(False)
        self.button.clicked.connect(lambda: self.candidate and self.diff_requested.emit(self.candidate))
        top.addWidget(self.button)
        self.summary = help_label(IDLE)
        top.addWidget(self.summary, 1)
        self.body.addLayout(top)
        split = QSplitter(Qt.Horizontal)
        self.ops = _table(OP_COLUMNS)
        self.tensors = _table(TENSOR_COLUMNS)
        self.samples = QListWidget()
        self.samples.setViewMode(QListView.IconMode)
        self.samples.setIconSize(QSize(THUMB, THUMB))
        self.samples.setResizeMode(QListView.Adjust)
        self.samples.setMovement(QListView.Static)
        self.samples.setWordWrap(True)
        self.samples.setGridSize(QSize(THUMB + 90, THUMB + 66))  # the thumbnail over three lines of text
        self.samples_note = help_label("")
        for title, widget in (("What changed", self.ops), ("Per layer, worst first", self.tensors),
                              ("Samples", self.samples)):
            split.addWidget(_titled(title, widget, self.samples_note if widget is self.samples else None))
        self.split = split
        self.body.addWidget(split, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Layer:"))
        self.layer = QLineEdit()
        self.layer.setReadOnly(True)
        self.layer.setPlaceholderText("select a row: its name, highlighted in the open graph windows")
        row.addWidget(self.layer, 1)
        self.where = QLabel("")  # which graph windows show the layer, and which could not
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row.addWidget(self.where, 1)
        self.body.addLayout(row)
        self.graph_windows: Callable[[], list[GraphWindow]] = list  # the open ones; the main window sets it
        self._asked: list[_Asked] = []
        self.ops.itemSelectionChanged.connect(lambda: self._show_layer(self.ops))
        self.tensors.itemSelectionChanged.connect(lambda: self._show_layer(self.tensors))
        self.candidate: str | None = None
        self.result: CandidateDiff | None = None

    def showEvent(self, event):
        """Half the width for what changed (its shapes are long), the rest for the layers and the samples; a
        splitter's stretch factors only share out space beyond the panes' size hints."""
        super().showEvent(event)
        if not getattr(self, "_sized", False):
            self._sized = True
            width = max(self.split.width(), 900)
            self.split.setSizes([width // 2, width * 3 // 10, width // 5])

    def set_candidate(self, cid: str) -> None:
        self.candidate = cid
        self.button.setEnabled(True)
        if self.result is None or self.result.candidate != cid:
            self.summary.setText(f"{cid}: {IDLE[0].lower()}{IDLE[1:]}")

    def show_diff(self, result: CandidateDiff) -> None:
        self.result = result
        self.layer.clear()
        self.where.clear()
        self._asked = []
        d = result.diff
        counts = d.counts()
        changes = ", ".join(f"{n} {c.value.replace('_', ' ')}" for c in Change if c != Change.SAME
                            and (n := counts[c.value])) or "no structural change"
        where = "random inputs" if d.synthetic else "the sweep's samples"
        worst = d.tensors[0] if d.tensors else None
        self.summary.setText(f"{result.candidate} against {Path(result.source).name}: {changes}; {len(d.tensors)}"
                             f" tensors compared on {d.sample_count} of {where}"
                             + (f", worst {worst.node} at {_db(worst.sqnr_db)} dB" if worst else ""))
        changed = sorted((o for o in d.ops if o.change != Change.SAME), key=lambda o: ORDER.index(o.change))
        _fill(self.ops, [_op_cells(o) for o in changed], [o.name for o in changed])  # in run order within a kind
        _fill(self.tensors, [(t.node, t.op, _db(t.sqnr_db), f"{t.cosine:.6f}") for t in d.tensors],
              [t.node for t in d.tensors])
        self._show_samples(result)

    def _show_samples(self, result: CandidateDiff) -> None:
        """The samples the models disagree on, as thumbnails with both predictions; else the lowest cosine."""
        d = result.diff
        disagree = [s for s in d.samples if s.disagree]
        shown = disagree or list(d.samples)
        self.samples.clear()
        for s in shown:
            item = QListWidgetItem(_sample_text(d, s, bool(disagree)))
            pix = thumbnail(result.input_of(s.index), THUMB)
            if pix is not None:
                item.setIcon(pix)
            item.setData(Qt.UserRole, s.index)
            item.setToolTip(f"sample {s.index}: cosine {s.cosine:.6f}" + (f", label {d.class_name(s.label)}"
                                                                            if s.label is not None else ""))
            self.samples.addItem(item)
        classes = bool(d.samples) and d.samples[0].class_a is not None
        more = "at least " if len(disagree) >= WORST_SAMPLES else ""  # the core lists no more than these
        self.samples_note.setText(
            f"{more}{len(disagree)} of {d.sample_count} samples get another top class" if disagree else
            f"Both models give every one of the {d.sample_count} samples the same top class; the lowest cosine"
            " first" if classes else "The outputs are not class scores: the lowest cosine first")

    def _show_layer(self, table: QTableWidget) -> None:
        rows = table.selectionModel().selectedRows()
        if rows:
            self.layer.setText(table.item(rows[0].row(), 0).data(Qt.UserRole) or "")
            self._highlight(self.layer.text())

    def _highlight(self, name: str) -> None:
        """Select the layer in every open graph window of the source and of the candidate; the answers come later."""
        self._asked = [_Asked(w, label) for w, label in self._graphs()]
        if not self._asked:
            cid = self.result.candidate if self.result else "the candidate"
            self.where.setText(f'no graph of the source or {cid} is open: "Graph" above opens the candidate\'s,'
                               ' "Show graph" on the Load page the source\'s')
            return
        self._say()
        for asked in self._asked:
            asked.window.highlighted.connect(self._on_highlighted, Qt.UniqueConnection)
            asked.window.highlight(name)

    def follow(self, window: GraphWindow) -> None:
        """A graph window just opened: once Netron has drawn it (or given up), the selected layer is shown in it too,
        without the user choosing the row again."""
        window.state_changed.connect(self._on_window_state)

    @Slot(str)
    def _on_window_state(self, state: str) -> None:
        if self.layer.text() and state != GraphState.LOADING:
            self._highlight(self.layer.text())

    def _graphs(self) -> list[tuple[GraphWindow, str]]:
        """The open graph windows of this diff's two models, each with how the line names it."""
        if self.result is None:
            return []
        source, model = Path(self.result.source).resolve(), Path(self.result.model).resolve()
        labels = {source: "the source's graph", model: f"{self.result.candidate}'s graph"}
        return [(w, labels[w.model]) for w in self.graph_windows() if w.model in labels]

    @Slot(str, bool)
    def _on_highlighted(self, name: str, found: bool) -> None:
        if name != self.layer.text():
            return  # the answer to an earlier row
        for asked in self._asked:
            if asked.window is self.sender():
                asked.found = found
        self._say()

    def _say(self) -> None:
        labels = dict.fromkeys(a.label for a in self._asked)  # in the windows' order, each once
        self.where.setText("; ".join(_answer(label, [a for a in self._asked if a.label == label])
                                     for label in labels))


def _answer(label: str, asked: list[_Asked]) -> str:
    """What the windows of one model did with the layer: any that highlighted it is enough."""
    if any(a.found for a in asked):
        return f"highlighted in {label}"
    if any(a.found is None for a in asked):
        return f"looking in {label}…"
    if any(a.window.state == GraphState.SHOWN for a in asked):
        return f"not found in {label} - search for it there"
    return f"{label} {NOT_DRAWN.get(asked[0].window.state, 'cannot show it')} - search for it there"


def _titled(title: str, widget: QWidget, under: QLabel | None = None) -> QWidget:
    holder = QWidget()
    col = QVBoxLayout(holder)
    col.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setStyleSheet("font-weight: 600;")
    col.addWidget(label)
    if under is not None:
        col.addWidget(under)
    col.addWidget(widget, 1)
    return holder


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectRows)
    t.setSelectionMode(QAbstractItemView.SingleSelection)
    t.setAlternatingRowColors(True)
    t.verticalHeader().hide()
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 8)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _fill(table: QTableWidget, rows: list[tuple[str, ...]], names: list[str]) -> None:
    """Rows in the order given (the core's: run order, worst first); column 0 carries the layer's full name."""
    table.setRowCount(len(rows))
    for r, (cells, name) in enumerate(zip(rows, names, strict=True)):
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            table.setItem(r, c, item)
        table.item(r, 0).setData(Qt.UserRole, name)
    table.resizeColumnsToContents()
    for c in range(table.columnCount() - 1):
        table.setColumnWidth(c, min(table.columnWidth(c), 150 if c < 3 else 320))


def _op_cells(o: OpDiff) -> tuple[str, ...]:
    details = list(o.details)
    if o.channels:
        details.insert(0, f"channels {o.channels[0]} -> {o.channels[1]}")
    return (o.change.value.replace("_", " "), o.name, o.op, f"{_outputs(o.a) or '-'} -> {_outputs(o.b) or '-'}",
            "; ".join(details))


def _outputs(n: Node | None) -> str:
    """A node's output shapes and dtypes, as the diff read them."""
    if n is None:
        return ""
    return ", ".join(f"{list(t.shape) if t.shape is not None else '?'} {t.dtype}" for t in n.outputs)


def _sample_text(d: ModelDiff, s: SampleDiff, disagree: bool) -> str:
    if not disagree:
        return f"#{s.index} cos {s.cosine:.4f}"
    return f"#{s.index}\nsource {d.class_name(s.class_a)}\ncandidate {d.class_name(s.class_b)}"


def _db(v: float) -> str:
    return f"{v:.2f}" if math.isfinite(v) else "exact"
