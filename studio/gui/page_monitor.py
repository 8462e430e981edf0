"""Monitor: each device's last check (release, verdict, latency against the bundle's promise, fidelity) and one
device's checks over time; Check now, and an auto-check interval."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from studio.core.monitor.records import CheckResult, Verdict

from .monitor_chart import MonitorChart, legend_html
from .monitor_text import VERDICT_COLORS, VERDICT_ICONS, ago, cells, details, fidelity_tip
from .resources import icon, white_icon
from .widgets import Banner, Card, Metric, help_label, page_layout

COLS = ["Device", "Release", "Verdict", "Latency vs promise", "Fidelity", "Last check"]
INTERVALS = [("Auto-check: off", 0), ("Auto-check every 5 min", 5), ("Auto-check every 10 min", 10),
             ("Auto-check every 30 min", 30), ("Auto-check every hour", 60)]


class MonitorPage(QWidget):
    check_requested = Signal(list)  # device names; empty: every device
    interval_changed = Signal(int)  # minutes between automatic checks, 0 = off

    def __init__(self, dark: bool = False, parent=None):
        super().__init__(parent)
        box = page_layout(self, "Monitor the fleet", "A check runs the bundle's check samples on the device with its"
                                                     " own runtime: does the model still answer and run as fast as"
                                                     " the bundle promised when it was exported?")
        self.banner = Banner()
        box.addWidget(self.banner)
        box.addLayout(self._build_tools())
        self.table = self._build_table()
        box.addWidget(self.table, 2)
        self.chart_card = Card("Select a device to see its checks over time")
        self.chart = MonitorChart(dark)
        self.chart.setMinimumHeight(300)
        self.chart_card.body.addWidget(self.chart, 1)
        self.empty = help_label("No checks yet. Push a bundle to a device on Deploy (Ctrl+5), then press Check now:"
                                " each check is kept, and the chart shows how the device's latency and answers"
                                " move over time.")
        self.chart_card.body.addWidget(self.empty)
        self.chart_card.body.addStretch()
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.chart_card.body.addWidget(self.details)
        self.chart_card.body.addWidget(help_label(legend_html()))
        box.addWidget(self.chart_card, 5)
        self.chart.hide()
        self.devices: list[str] = []
        self.history: dict[str, list[CheckResult]] = {}
        self.rows: dict[str, int] = {}
        self.selected: str | None = None  # the device the chart shows
        self.pinned: str | None = None  # the device the user chose (else the chart shows one needing attention)

    def _build_tools(self) -> QHBoxLayout:
        tools = QHBoxLayout()
        self.metrics = {k: Metric(k) for k in ("devices", "ok", "need attention", "last check")}
        for m in self.metrics.values():
            tools.addWidget(m)
            tools.addSpacing(18)
        tools.addStretch()
        self.interval = QComboBox()
        for text, minutes in INTERVALS:
            self.interval.addItem(text, minutes)
        self.interval.setToolTip("Check every device on a schedule while the window is open (skipped while"
                                 " another task runs)")
        self.interval.currentIndexChanged.connect(lambda i: self.interval_changed.emit(self.interval.itemData(i)))
        tools.addWidget(self.interval)
        self.check_one = QPushButton(icon("device"), "Check selected")
        self.check_one.clicked.connect(self._check_selected)
        tools.addWidget(self.check_one)
        self.check_all = QPushButton(white_icon("monitor"), "Check now")
        self.check_all.setObjectName("primary")
        self.check_all.setToolTip("Check every device now (Esc cancels)")
        self.check_all.clicked.connect(lambda: self.check_requested.emit([]))
        tools.addWidget(self.check_all)
        return tools

    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLS))
        table.setHorizontalHeaderLabels(COLS)
        table.verticalHeader().hide()
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.setSelectionMode(QAbstractItemView.SingleSelection)
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setMinimumHeight(120)
        table.itemSelectionChanged.connect(self._on_selection)
        return table

    # --- state in --------------------------------------------------------------------------------------------
    def set_interval(self, minutes: int) -> None:
        """Show the saved interval without announcing it as a change."""
        i = max(0, self.interval.findData(minutes))
        self.interval.blockSignals(True)
        self.interval.setCurrentIndex(i)
        self.interval.blockSignals(False)

    def set_devices(self, names: list[str]) -> None:
        """The devices of the inventory (a device only in the history is shown too, as removed)."""
        self.devices = list(names)
        self._render()

    def show_history(self, rows: list[CheckResult]) -> None:
        """Every check in the database, oldest first."""
        self.history = {}
        for r in rows:
            self.history.setdefault(r.device, []).append(r)
        self._render()

    def add_result(self, result: CheckResult) -> None:
        """A device's check just finished: its row and chart show it at once."""
        self.history.setdefault(result.device, []).append(result)
        if result.device not in self.rows:
            self._render()
            return
        self._fill_row(self.rows[result.device], result.device)
        self._show_metrics()
        if result.device == self.selected:
            self._show_device(result.device)

    def set_checking(self, names: list[str]) -> None:
        for name in names or list(self.rows):
            r = self.rows.get(name)
            if r is not None:
                self.table.setItem(r, 2, QTableWidgetItem(icon("refresh"), "checking…"))

    def set_busy(self, busy: bool) -> None:
        self.check_all.setEnabled(not busy)
        self.check_one.setEnabled(not busy)

    # --- rendering -------------------------------------------------------------------------------------------
    def _render(self) -> None:
        names = sorted(set(self.devices) | set(self.history))
        self.table.blockSignals(True)
        self.table.setRowCount(len(names))
        self.rows = {n: i for i, n in enumerate(names)}
        for i, n in enumerate(names):
            self._fill_row(i, n)
        self.table.resizeColumnsToContents()
        self._show_metrics()
        if names:
            keep = self.pinned if self.pinned in self.rows else self._worst(names)
            self.table.selectRow(self.rows[keep])
            self._show_device(keep)
        self.table.blockSignals(False)

    def _fill_row(self, i: int, name: str) -> None:
        last = self.history.get(name, [None])[-1]
        removed = name not in self.devices and bool(self.devices)
        device = QTableWidgetItem(icon("device"), name + ("  (removed)" if removed else ""))
        device.setData(Qt.UserRole, name)
        items = [device] + [QTableWidgetItem(t) for t in cells(last, self._known_release(name))]
        if last is not None:
            items[2].setIcon(icon(VERDICT_ICONS[last.verdict]))
            items[2].setForeground(QColor(VERDICT_COLORS[last.verdict]))
            items[2].setToolTip(last.reason)
            items[4].setToolTip(fidelity_tip(last))
            items[5].setToolTip(last.checked_at)
        for c, item in enumerate(items):
            self.table.setItem(i, c, item)

    def _known_release(self, name: str) -> str | None:
        return next((r.release for r in reversed(self.history.get(name, [])) if r.release), None)

    def _show_metrics(self) -> None:
        last = [rows[-1] for rows in self.history.values() if rows]
        self.metrics["devices"].set(str(len(self.rows)))
        self.metrics["ok"].set(str(sum(r.verdict is Verdict.OK for r in last)))
        self.metrics["need attention"].set(str(sum(r.verdict is not Verdict.OK for r in last)))
        self.metrics["last check"].set(ago(max(r.checked_at for r in last)) if last else "never")

    def _worst(self, names: list[str]) -> str:
        """The device to show first: one that is not ok, else the first."""
        bad = [n for n in names if self.history.get(n) and self.history[n][-1].verdict is not Verdict.OK]
        return (bad or names)[0]

    def _on_selection(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.pinned = self.table.item(rows[0].row(), 0).data(Qt.UserRole)
            self._show_device(self.pinned)

    def _show_device(self, name: str) -> None:
        self.selected = name
        rows = self.history.get(name, [])
        self.chart.show_rows(rows)
        self.chart.setVisible(bool(rows))
        self.empty.setVisible(not rows)
        self.chart_card.title.setText(f"{name}: {len(rows)} check(s) over time" if rows else
                                      f"{name}: not checked yet (Check now)")
        self.details.setText(details(rows[-1]) if rows else "")

    def _check_selected(self) -> None:
        if self.selected is None:
            self.banner.show_message("info", "Select a device in the table first.")
            return
        self.check_requested.emit([self.selected])
