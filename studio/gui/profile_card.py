"""Preview's per-operator time: profile the chosen candidate with its runtime's profiler (onnxruntime's, or LiteRT's for
TFLite) and draw the time per operator type, with the measured latency, the slowest node and any provider or delegate
fallback in the line above the bars."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QPushButton

from studio.core.look.profile import ProfileReport

from .charts import OperatorTimeChart
from .widgets import Card, help_label

IDLE = "Choose a candidate and profile it: the time per operator type in one run on this machine."


class OperatorTimeCard(Card):
    profile_requested = Signal(str)  # candidate id

    def __init__(self, dark: bool, parent=None):
        super().__init__("Time per operator", parent)
        self.button = QPushButton("Profile this candidate")
        self.button.setToolTip("Run the chosen candidate with its runtime's profiler (onnxruntime's, or LiteRT's for"
                               " TFLite) on the sample its latency was timed on")
        self.button.setEnabled(False)
        self.button.clicked.connect(lambda: self.candidate and self.profile_requested.emit(self.candidate))
        self.body.addWidget(self.button)
        self.summary = help_label(IDLE)
        self.body.addWidget(self.summary)
        self.chart = OperatorTimeChart(dark)
        self.body.addWidget(self.chart)
        self.candidate: str | None = None
        self.report: ProfileReport | None = None

    def set_candidate(self, cid: str) -> None:
        """The chosen candidate (ONNX or TFLite: both have a profiler)."""
        self.candidate = cid
        self.button.setEnabled(True)
        if self.report is None:
            self.summary.setText(IDLE)

    def show_profile(self, cid: str, report: ProfileReport) -> None:
        self.report = report
        text = f"{cid}: operators {report.op_ms:.3f} of {report.latency_ms:.3f} ms measured per run"
        if report.nodes:
            slowest = report.nodes[0]
            text += f"; slowest {slowest.name} ({slowest.op}, {slowest.share:.0%})"
        if len(report.providers) > 1:
            text += f"; {len(report.fallback)} node(s) ran outside {report.providers[0]}"
        self.summary.setText(text)
        self.chart.show_op_types(list(report.op_types))
