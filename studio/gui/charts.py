"""pyqtgraph charts: the live accuracy-vs-latency scatter, the per-layer sensitivity bars, the quantization
debugger's per-layer error bars and the time per operator type. Charts take the core's records and update items
made once (setData), as Orange3 does."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor

from studio.core.inspect.modelinfo import human_bytes
from studio.core.sweep.pareto import front_2d
from studio.core.sweep.records import CandidateResult, CandidateStatus

from . import theme

if TYPE_CHECKING:
    from studio.core.look.profile import OpTypeTime
    from studio.core.quantize.onnx_debug import LayerError

QUANT_COLORS = {"none": "#4a7fd4", "fp16": "#2e9d57", "dynamic": "#d9822b", "int8": "#c44e52"}
TARGET_SYMBOLS = {"onnx": "o", "tflite": "s"}


def _style(plot: pg.PlotWidget, dark: bool, x: str, y: str) -> None:
    colors = theme.chart_colors(dark)
    plot.setBackground(colors["background"])
    for axis in ("left", "bottom"):
        ax = plot.getAxis(axis)
        ax.setPen(colors["foreground"])
        ax.setTextPen(colors["foreground"])
        ax.enableAutoSIPrefix(False)  # milliseconds stay milliseconds, no "(x0.001)"
    plot.showGrid(x=True, y=True, alpha=colors["grid"])
    plot.setLabel("bottom", x)
    plot.setLabel("left", y)


class TradeoffChart(pg.PlotWidget):
    """Accuracy (or agreement) vs measured latency; marker size = model size, colour = quantization, symbol =
    target; the accuracy/latency front drawn as a line; hover shows a candidate, click selects it."""

    candidate_clicked = Signal(str)
    bound_moved = Signal(float)  # the score a recommended candidate must reach, dragged on the chart

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent=parent)
        self.dark = dark
        self.use_device = False
        self.metric = "top-1 accuracy (%)"
        _style(self, dark, "latency, median ms (measured, batch 1)", self.metric)
        self.front = pg.PlotCurveItem(pen=pg.mkPen(theme.chart_colors(dark)["foreground"], width=1.5),
                                      stepMode=None)
        self.addItem(self.front)
        self.scatter = pg.ScatterPlotItem(hoverable=True, tip=self._tip, hoverPen=pg.mkPen("#f2b84b", width=3))
        self.scatter.sigClicked.connect(self._clicked)
        self.addItem(self.scatter)
        self.selected_ring = pg.ScatterPlotItem(pen=pg.mkPen("#f2b84b", width=3), brush=None, size=30)
        self.addItem(self.selected_ring)
        self.degraded = pg.ScatterPlotItem(symbol="x", size=12, brush=QColor("#9a9a9a"), pen=pg.mkPen("#9a9a9a"))
        self.addItem(self.degraded)  # measured but below the quality gate: greyed, never on the front
        self.bound = pg.InfiniteLine(angle=0, movable=True, pen=pg.mkPen("#d9982b", width=1, style=Qt.DashLine),
                                     label="bound {value:.2f}", labelOpts={"position": 0.05, "color": "#d9982b"})
        self.bound.sigPositionChangeFinished.connect(lambda line: self.bound_moved.emit(float(line.value())))
        self.bound.hide()
        self.addItem(self.bound)
        self.source: list[CandidateResult] = []
        self.candidates: list[CandidateResult] = []
        self.selected: str | None = None

    def _x(self, c: CandidateResult) -> float | None:
        return c.device_latency_ms_median if self.use_device else c.latency_ms_median

    def set_candidates(self, candidates: list[CandidateResult], metric: str | None = None) -> None:
        self.source = candidates  # all of them, to re-plot when the latency axis changes
        self.candidates = [c for c in candidates if c.ok and c.score is not None and self._x(c) is not None]
        self.degraded.setData([{"pos": (self._x(c), c.score), "data": c.id} for c in candidates
                               if c.status == CandidateStatus.DEGRADED and c.score is not None and
                               self._x(c) is not None])
        if metric and metric != self.metric:
            self.metric = metric
            self.setLabel("left", metric)
        if not self.candidates:
            self.scatter.setData([])
            self.front.setData([], [])
            self._select_ring()
            return
        biggest = max(c.size_bytes or 0 for c in self.candidates) or 1
        spots = []
        for c in self.candidates:
            edge = pg.mkPen(theme.chart_colors(self.dark)["foreground"], width=2) if c.pareto else None
            spots.append({"pos": (self._x(c), c.score), "size": 10 + 26 * ((c.size_bytes or 0) / biggest) ** 0.5,
                          "brush": QColor(QUANT_COLORS.get(c.quant, "#8172b3")), "pen": edge,
                          "symbol": TARGET_SYMBOLS.get(c.target, "o"), "data": c.id})
        self.scatter.setData(spots)
        front = front_2d(self.candidates, latency=self._x)
        if front:  # a staircase: each step holds the best accuracy reached so far
            fx, fy = np.array([self._x(c) for c in front]), np.array([c.score for c in front])
            self.front.setData(np.repeat(fx, 2)[1:], np.repeat(fy, 2)[:-1])
        self._select_ring()

    def show_bound(self, score: float | None) -> None:
        """The line a recommended candidate must reach (the source's score minus the bound); None hides it."""
        self.bound.setVisible(score is not None)
        if score is not None:
            self.bound.setValue(score)

    def set_device_latency(self, on: bool) -> None:
        self.use_device = on
        self.setLabel("bottom", "latency on the device, median ms" if on else "latency, median ms (measured,"
                                                                                " batch 1)")
        self.set_candidates(self.source)

    def select(self, cid: str | None) -> None:
        self.selected = cid
        self._select_ring()

    def _select_ring(self) -> None:
        hit = [c for c in self.candidates if c.id == self.selected]
        self.selected_ring.setData([{"pos": (self._x(c), c.score)} for c in hit])

    def _clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.candidate_clicked.emit(points[0].data())

    def _tip(self, x, y, data):
        c = next((c for c in self.candidates if c.id == data), None)
        if c is None:
            return ""
        lines = [c.id, f"{self.metric}: {c.score:.2f}", f"latency p50 {c.latency_ms_median:.4f} ms,"
                 f" p90 {c.latency_ms_p90:.4f} ms", f"size {human_bytes(c.size_bytes or 0)}"]
        if c.noisy_note:
            lines.append(c.noisy_note)
        if c.device_latency_ms_median is not None:
            lines.append(f"on the device: {c.device_latency_ms_median:.4f} ms")
        if c.float_layers:
            lines.append(f"{len(c.float_layers)} layer(s) kept in float")
        if c.pareto:
            lines.append("on the Pareto front")
        return "\n".join(lines)


class SensitivityChart(pg.PlotWidget):
    """Per-layer sensitivity as bars: quantization (output SQNR in dB, lower = more sensitive) or structured
    pruning (accuracy points lost when only that layer is pruned)."""

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent=parent)
        self.dark = dark
        _style(self, dark, "layer", "")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=theme.ACCENT)
        self.addItem(self.bars)
        self.rows: list[dict] = []

    def show_rows(self, kind: str, rows: list[dict]) -> None:
        self.rows = rows
        if kind == "quantization":
            values = [r["sqnr_db"] or 0 for r in rows]
            self.setLabel("left", "SQNR when only this layer is int8 (dB)")
            brushes = [QColor(theme.BAD if v < 25 else theme.WARN if v < 40 else theme.OK) for v in values]
        else:
            values = [r["accuracy_drop"] for r in rows]
            self.setLabel("left", "accuracy points lost")
            brushes = [QColor(theme.BAD if v > 5 else theme.WARN if v > 1 else theme.OK) for v in values]
        x = np.arange(len(rows))
        self.bars.setOpts(x=x, height=values, brushes=brushes, width=0.7)
        self.getAxis("bottom").setTicks(spaced_ticks([_short(r["layer"]) for r in rows]))
        self.setXRange(-0.6, max(0.6, len(rows) - 0.4))
        if values:
            self.setYRange(0, max(values) * 1.1 if max(values) > 0 else 1)


class LayerErrorChart(pg.PlotWidget):
    """The quantization debugger's layers, worst first: SQNR between the float and the int8 tensor (dB, lower =
    worse); the layers chosen to keep in float drawn in the warning colour. Exact tensors (no error) are left out."""

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent=parent)
        self.dark = dark
        _style(self, dark, "layer (worst first)", "SQNR float vs int8 (dB)")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=theme.ACCENT)
        self.addItem(self.bars)
        self.layers: list[LayerError] = []

    def show_layers(self, layers: list[LayerError], chosen: set[str]) -> None:
        """`layers` worst first; the tensors in `chosen` are those of the layers to keep in float."""
        self.layers = [r for r in layers if np.isfinite(r.sqnr_db)]
        values = [r.sqnr_db for r in self.layers]
        brushes = [QColor(theme.BAD if r.tensor in chosen else theme.ACCENT) for r in self.layers]
        self.bars.setOpts(x=np.arange(len(values)), height=values, brushes=brushes, width=0.7)
        self.getAxis("bottom").setTicks([[(i, _short(r.tensor)) for i, r in enumerate(self.layers)]])
        self.setXRange(-0.6, max(0.6, len(values) - 0.4))
        if values:
            self.setYRange(0, max(values) * 1.1 if max(values) > 0 else 1)


class OperatorTimeChart(pg.PlotWidget):
    """Time per operator type in one run (ms, from onnxruntime's profiler), slowest first (leftmost)."""

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent=parent)
        self.dark = dark
        _style(self, dark, "operator type", "ms per run")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=theme.ACCENT)
        self.addItem(self.bars)
        self.rows: list[OpTypeTime] = []

    def show_op_types(self, rows: list[OpTypeTime]) -> None:
        self.rows = rows
        values = [r.ms for r in rows]
        self.bars.setOpts(x=np.arange(len(values)), height=values, width=0.7)
        self.getAxis("bottom").setTicks(spaced_ticks([_short(r.op) for r in rows]))
        self.setXRange(-0.6, max(0.6, len(values) - 0.4))
        if values:
            self.setYRange(0, max(values) * 1.1 if max(values) > 0 else 1)


def spaced_ticks(labels: list[str]) -> list[list[tuple[int, str]]]:
    """Bar labels as tick levels: every fourth bar's first, then every other, then the rest; pyqtgraph draws a
    finer level only where its text fits, so a narrow chart names fewer bars instead of printing them over each
    other."""
    levels: list[list[tuple[int, str]]] = [[], [], []]
    for i, text in enumerate(labels):
        levels[0 if i % 4 == 0 else 1 if i % 2 == 0 else 2].append((i, text))
    return levels


def _short(name: str) -> str:
    name = name.split("/")[-1].split(";")[0].removeprefix("node_")
    return name if len(name) <= 10 else name[:4] + "…" + name[-5:]


def legend_html() -> str:
    """The chart's key, as a line of text under it (a legend inside the plot would hide points)."""
    dots = "  ".join(f"<span style='color:{c}'>●</span> {'fp32' if q == 'none' else q}"
                     for q, c in QUANT_COLORS.items())
    return f"{dots}   │   ● onnx  ■ tflite   │   outlined: on the Pareto front, line: best accuracy so far"
