"""Preview: the live trade-off chart, the sensitivity bars, the time per operator and the quantization debugger of
the chosen candidate, a sortable table of every candidate and the chosen one's diff with the source."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QWidget,
)

from studio.core.inspect.modelinfo import human_bytes
from studio.core.recipe.recipe import QuantMode
from studio.core.sweep.records import CandidateFinished, CandidateResult, CandidateStatus

from .charts import LayerErrorChart, SensitivityChart, TradeoffChart, legend_html
from .diff_view import DiffView
from .profile_card import OperatorTimeCard
from .resources import white_icon
from .widgets import Banner, Card, help_label, page_layout

if TYPE_CHECKING:
    from studio.core.sweep.quant_debug import QuantDebug

COLUMNS = [("id", "Candidate"), ("target", "Target"), ("quant", "Quantization"), ("prune_ratio", "Pruned"),
           ("accuracy", "Accuracy %"), ("agreement", "Agreement %"), ("latency_ms_median", "Latency p50 ms"),
           ("latency_ms_p90", "p90 ms"), ("device_latency_ms_median", "Device ms"), ("size_bytes", "Size"),
           ("pareto", "Pareto"), ("status", "Status")]


class PreviewPage(QWidget):
    """Renders a sweep's candidates as the core flagged them: it never ranks or recomputes the Pareto front."""

    candidate_chosen = Signal(str)
    use_requested = Signal(str)
    debug_requested = Signal(str)  # candidate id
    keep_float_requested = Signal(str, tuple)  # candidate id, the nodes to keep in float
    graph_requested = Signal(str)  # candidate id

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent)
        box = page_layout(self, "Preview the trade-offs", "Each point is a candidate measured on this machine: hover"
                                                          " for details, click to choose one.", spacing=10)
        self.banner = Banner()
        box.addWidget(self.banner)
        box.addLayout(self._top_row())
        split = QSplitter(Qt.Vertical)
        split.addWidget(self._charts(dark))
        self.tabs = QTabWidget()  # every candidate, and the chosen one against its source
        self.tabs.addTab(self._table(), "Candidates")
        self.diff = DiffView()
        self.tabs.addTab(self.diff, "Diff with the source")
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([480, 260])
        self.tabs.currentChanged.connect(lambda i: split.setSizes([300, 480] if self.tabs.widget(i) is self.diff
                                                                  else [480, 260]))  # the diff's tables need rows
        box.addWidget(split, 1)
        self.candidates: dict[str, CandidateResult] = {}
        self.order: list[str] = []
        self.best: str | None = None
        self.metric = "top-1 accuracy (%)"
        self.sensitivity: dict = {}
        self.selected: str | None = None
        self.reference: dict = {}  # the source's score ("metric_value") and the metric kind ("metric")
        self.recommendation: dict = {}  # the core's pick: bound, met, closest, note
        self.debug: QuantDebug | None = None

    def _top_row(self) -> QHBoxLayout:
        top = QHBoxLayout()
        self.summary = QLabel("No sweep yet: run one from Optimize (Ctrl+R).")
        top.addWidget(self.summary, 1)
        self.latency_mode = QComboBox()
        self.latency_mode.addItems(["host latency", "device latency"])
        self.latency_mode.setToolTip("Latency measured on this machine, or on the device the sweep used")
        self.latency_mode.currentIndexChanged.connect(lambda i: self.chart.set_device_latency(i == 1))
        self.latency_mode.setEnabled(False)
        top.addWidget(self.latency_mode)
        self.graph = QPushButton("Graph")
        self.graph.setToolTip("The chosen candidate's graph in Netron, in its own window")
        self.graph.setEnabled(False)
        self.graph.clicked.connect(lambda: self.selected and self.graph_requested.emit(self.selected))
        top.addWidget(self.graph)
        self.use = QPushButton(white_icon("export"), "Use this candidate")
        self.use.setObjectName("primary")
        self.use.setEnabled(False)
        self.use.clicked.connect(lambda: self.selected and self.use_requested.emit(self.selected))
        top.addWidget(self.use)
        return top

    def _charts(self, dark: bool) -> QSplitter:
        charts = QSplitter(Qt.Horizontal)
        self.chart = TradeoffChart(dark)
        self.chart.candidate_clicked.connect(self.select)
        self.chart.bound_moved.connect(self._on_bound_moved)
        chart_card = Card("Accuracy vs latency (marker size = model size)")
        chart_card.body.addWidget(self.chart)
        key = QLabel(legend_html())
        key.setObjectName("help")
        chart_card.body.addWidget(key)
        charts.addWidget(chart_card)
        sens_card = Card("Per-layer sensitivity")
        self.sens_kind = QComboBox()
        self.sens_kind.currentTextChanged.connect(self._show_sensitivity)
        sens_card.body.addWidget(self.sens_kind)
        self.sens_help = help_label("Red: a sensitive layer (hover for how it is measured)")  # one line: the chart
        self.sens_help.setToolTip("Quantization: output SQNR with only that layer in int8 (lower = more sensitive)."
                                  " Pruning: accuracy lost with only that layer pruned.")  # needs the height
        sens_card.body.addWidget(self.sens_help)
        self.sens = SensitivityChart(dark)
        sens_card.body.addWidget(self.sens)
        column = QSplitter(Qt.Vertical)  # the sensitivity and, under it, where the chosen candidate's time goes
        column.addWidget(sens_card)
        self.profile = OperatorTimeCard(dark)
        column.addWidget(self.profile)
        column.setMinimumWidth(320)  # room for the bars' operator names: the debugger's card would take it all
        charts.addWidget(column)
        charts.addWidget(self._debug_card(dark))
        charts.setStretchFactor(0, 3)
        charts.setStretchFactor(1, 2)
        charts.setStretchFactor(2, 2)
        return charts

    def _debug_card(self, dark: bool) -> Card:
        card = Card("Quantization debugger")
        row = QHBoxLayout()
        self.debug_button = QPushButton("Debug this candidate")
        self.debug_button.setToolTip("Compare every layer of the chosen int8 candidate with its float model")
        self.debug_button.setEnabled(False)
        self.debug_button.clicked.connect(lambda: self.selected and self.debug_requested.emit(self.selected))
        row.addWidget(self.debug_button)
        self.keep_count = QSpinBox()
        self.keep_count.setPrefix("worst ")
        self.keep_count.setSuffix(" layer(s)")
        self.keep_count.setRange(1, 1)
        self.keep_count.valueChanged.connect(self._show_debug_chart)
        row.addWidget(self.keep_count)
        card.body.addLayout(row)
        row = QHBoxLayout()  # a second row: side by side, the three are cut off in a narrow card
        self.keep_button = QPushButton("Keep these layers in float")
        self.keep_button.setToolTip("Quantize again with the layers in red kept in float, measure it and add it to"
                                    " the chart")
        self.keep_button.setEnabled(False)
        self.keep_button.clicked.connect(self._keep_float)
        row.addWidget(self.keep_button)
        row.addStretch()
        card.body.addLayout(row)
        self.debug_summary = help_label("Choose an int8 candidate and debug it: per-layer error between its float"
                                        " and int8 model on the sweep's samples (lower SQNR = more error).")
        card.body.addWidget(self.debug_summary)
        self.debug_chart = LayerErrorChart(dark)
        card.body.addWidget(self.debug_chart)
        return card

    def _table(self) -> QTableView:
        self.model = QStandardItemModel(0, len(COLUMNS))
        self.model.setHorizontalHeaderLabels([c[1] for c in COLUMNS])
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().selectionChanged.connect(self._table_selected)
        return self.table

    # --- data in ---------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.candidates.clear()
        self.order.clear()
        self.best = None
        self.model.removeRows(0, self.model.rowCount())
        self.sensitivity = {}
        self.sens_kind.clear()
        self.chart.set_candidates([])
        self.summary.setText("Sweep running: points appear as candidates finish.")

    def add_candidate(self, event: CandidateFinished) -> None:
        """A finished candidate (live from a running sweep), with the front and best pick the core computed."""
        c = event.candidate
        if c.id not in self.candidates:
            self.order.append(c.id)
        self.candidates[c.id] = c
        front = set(event.pareto)
        self.candidates = {i: r.with_pareto(i in front) for i, r in self.candidates.items()}
        self.best = event.best
        self._refresh()

    def set_results(self, doc: dict) -> None:
        """A results document (results.json): its rows carry the core's Pareto flags and its best pick."""
        rows = [CandidateResult.from_dict(c) for c in doc["candidates"]]
        self.candidates = {c.id: c for c in rows}
        self.order = [c.id for c in rows]
        self.best = doc.get("best")
        self.metric = doc.get("metric", self.metric)
        self.reference = doc.get("reference") or {}
        self.recommendation = doc.get("recommendation") or {}
        if doc.get("sensitivity"):
            self.set_sensitivity(doc["sensitivity"])
        self._refresh()

    def set_sensitivity(self, sens: dict) -> None:
        self.sensitivity = sens or {}
        self.sens_kind.blockSignals(True)
        self.sens_kind.clear()
        for kind in ("quantization", "pruning"):
            if self.sensitivity.get(kind, {}).get("layers"):
                self.sens_kind.addItem(kind)
        self.sens_kind.blockSignals(False)
        self._show_sensitivity(self.sens_kind.currentText())

    def _show_sensitivity(self, kind: str) -> None:
        if kind:
            self.sens.show_rows(kind, self.sensitivity[kind]["layers"])

    def _refresh(self) -> None:
        rows = [self.candidates[i] for i in self.order]
        self.chart.set_candidates(rows, self.metric)
        self.latency_mode.setEnabled(any(r.device_latency_ms_median is not None for r in rows))
        self.model.removeRows(0, self.model.rowCount())
        for r in rows:
            self.model.appendRow(_row_items(r))
        failed = sum(1 for r in rows if not r.ok)
        text = f"{len(rows)} candidates measured, {sum(1 for r in rows if r.pareto)} on the Pareto front"
        if failed:
            text += f", {failed} failed"
        degraded = sum(1 for r in rows if r.status == CandidateStatus.DEGRADED)
        if degraded:
            text += f", {degraded} degraded (grey: below the quality gate)"
        if self.best:
            text += f"; recommended: <b>{self.best}</b>"
        elif self.recommendation.get("note"):
            text += f"; {self.recommendation['note']}"
        self.summary.setText(text)
        ref, bound = self.reference.get("metric_value"), self.recommendation.get("bound")
        self.chart.show_bound(ref - bound if ref is not None and bound is not None else None)
        if self.selected:
            self.chart.select(self.selected)

    def _on_bound_moved(self, score: float) -> None:
        """The user dragged the bound: recommend again against it, as the core does."""
        from studio.core.sweep.pareto import recommend

        ref = self.reference.get("metric_value")
        if ref is None:
            return
        rows = [self.candidates[i] for i in self.order]
        pick = recommend(rows, ref, max(0.0, ref - score), str(self.reference.get("metric") or "accuracy"))
        self.best, self.recommendation = pick.id, pick.to_dict()
        self._refresh()

    def show_debug(self, debug: QuantDebug) -> None:
        """The debugger's layers of one candidate, worst first; the spin box chooses how many to keep in float."""
        self.debug = debug
        nodes = self._debug_nodes()
        self.keep_count.blockSignals(True)
        self.keep_count.setRange(1, max(1, len(nodes)))
        self.keep_count.setValue(min(3, max(1, len(nodes))))
        self.keep_count.blockSignals(False)
        self.keep_button.setEnabled(bool(nodes))
        worst = debug.layers[0] if debug.layers else None
        self.debug_summary.setText(f"{debug.candidate}: {len(debug.layers)} quantized tensors on {debug.samples}"
                                   " samples" + (f"; worst {worst.tensor} ({worst.op}) at {worst.sqnr_db:.1f} dB"
                                                 if worst else ""))
        self._show_debug_chart()

    def _debug_nodes(self) -> list[str]:
        """The layers that can be kept in float (a graph input has no node), worst first, without repeats."""
        return list(dict.fromkeys(r.node for r in self.debug.layers if r.node)) if self.debug else []

    def chosen_layers(self) -> tuple[str, ...]:
        return tuple(self._debug_nodes()[:self.keep_count.value()])

    def _show_debug_chart(self, *args) -> None:
        if self.debug is not None:
            chosen = set(self.chosen_layers())
            self.debug_chart.show_layers(list(self.debug.layers), {r.tensor for r in self.debug.layers
                                                                   if r.node in chosen})

    def _keep_float(self) -> None:
        if self.debug is not None and self.chosen_layers():
            self.keep_float_requested.emit(self.debug.candidate, self.chosen_layers())

    # --- selection -------------------------------------------------------------------------------------------
    def select(self, cid: str) -> None:
        if cid not in self.candidates or not self.candidates[cid].ok:
            return
        self.selected = cid
        self.chart.select(cid)
        self.use.setEnabled(True)
        self.graph.setEnabled(True)
        c = self.candidates[cid]
        self.debug_button.setEnabled(c.quant == QuantMode.INT8)
        self.profile.set_candidate(cid)
        self.diff.set_candidate(cid)
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(Qt.UserRole + 1) == cid:
                self.table.selectRow(row)
                break
        self.candidate_chosen.emit(cid)

    def _table_selected(self, *args) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            cid = rows[0].data(Qt.UserRole + 1)
            if cid != self.selected:
                self.select(cid)


def _row_items(r: CandidateResult) -> list[QStandardItem]:
    """One table row: display text, a sort key (missing numbers sort after every measured one) and the id."""
    items = []
    for key, _ in COLUMNS:
        v = getattr(r, key)
        text = ("yes" if v else "") if key == "pareto" else human_bytes(v) if key == "size_bytes" and v else \
            f"{v:.4f}" if isinstance(v, float) and "latency" in key else \
            f"{v:.2f}" if isinstance(v, float) else ("" if v is None else str(v))
        if key == "status" and r.error:
            text = f"{r.status}: {r.error}"
        item = QStandardItem(text)
        if key == "latency_ms_median" and r.noisy_note:
            item.setText("~" + text)
            item.setToolTip(r.noisy_note)
        numeric = key not in ("id", "target", "quant", "status")
        item.setData(v if isinstance(v, (int, float)) else float("inf") if numeric else text, Qt.UserRole)
        item.setData(r.id, Qt.UserRole + 1)
        item.setEditable(False)
        items.append(item)
    return items
