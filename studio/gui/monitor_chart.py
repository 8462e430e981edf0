"""The Monitor page's chart: one device's checks in time order, median latency above fidelity, the bundle's promised
latency as a dashed step line, each release's first check as a labelled vertical line, points coloured by verdict.

Checks are spaced evenly (x = the check's number, labelled with its time): a schedule of 10 minutes, a burst of
manual checks a second apart and a week of silence all stay readable."""
from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from studio.core.monitor.records import CheckResult, Verdict

from . import theme
from .charts import _style
from .monitor_text import VERDICT_COLORS, epoch, worst_output

MAX_TICKS = 8


def release_starts(rows: list[CheckResult]) -> list[tuple[int, str]]:
    """(row index, release) of each check where the device runs a release other than at its previous answer."""
    starts, last = [], None
    for i, r in enumerate(rows):
        if r.release is not None and r.release != last:
            starts.append((i, r.release))
            last = r.release
    return starts


def time_ticks(rows: list[CheckResult]) -> list[tuple[int, str]]:
    """(check number, local time) for at most MAX_TICKS checks; seconds only when the checks span minutes, the
    date when they span days."""
    if not rows:
        return []
    times = [datetime.fromtimestamp(epoch(r.checked_at)) for r in rows]
    span = (times[-1] - times[0]).total_seconds()
    fmt = "%d %b %H:%M" if times[0].date() != times[-1].date() else "%H:%M" if span >= 600 else "%H:%M:%S"
    step = max(1, math.ceil(len(rows) / MAX_TICKS))
    return [(i, times[i].strftime(fmt)) for i in range(0, len(rows), step)]


def _steps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A step line: each value holds until the next check."""
    if len(x) < 2:
        return x, y
    return np.repeat(x, 2)[1:], np.repeat(y, 2)[:-1]


def _nan(v: float | None) -> float:
    return np.nan if v is None else float(v)


class MonitorChart(QWidget):
    """Latency (ms) and worst-output cosine of one device's checks, on one time axis."""

    def __init__(self, dark: bool, parent=None):
        super().__init__(parent)
        self.dark = dark
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(4)
        fg = theme.chart_colors(dark)["foreground"]
        self.latency_plot = self._plot("median latency (ms)")
        self.fidelity_plot = self._plot("fidelity (cosine)")
        self.fidelity_plot.setXLink(self.latency_plot)
        self.latency_plot.getAxis("bottom").setLabel("")
        box.addWidget(self.latency_plot, 3)
        box.addWidget(self.fidelity_plot, 2)
        dash = {"width": 2, "style": Qt.DashLine}
        self.promise = pg.PlotCurveItem(pen=pg.mkPen(theme.ACCENT, **dash), connect="finite")
        self.latency_line = pg.PlotCurveItem(pen=pg.mkPen(fg, width=1.2), connect="finite")
        self.latency = pg.ScatterPlotItem(size=9, hoverable=True, tip=self._tip, pen=pg.mkPen(fg, width=0.6))
        grey = QColor(VERDICT_COLORS[Verdict.UNREACHABLE])
        self.unreachable = pg.ScatterPlotItem(symbol="x", size=12, brush=grey, pen=pg.mkPen(grey), hoverable=True,
                                              tip=self._tip)  # no latency: drawn on the time axis
        self.promised_cosine = pg.PlotCurveItem(pen=pg.mkPen(theme.ACCENT, **dash), connect="finite")
        self.reference = pg.PlotCurveItem(pen=pg.mkPen(fg, width=1, style=Qt.DashDotLine), connect="finite")
        self.fidelity_line = pg.PlotCurveItem(pen=pg.mkPen(fg, width=1.2), connect="finite")
        self.fidelity = pg.ScatterPlotItem(size=9, hoverable=True, tip=self._tip, pen=pg.mkPen(fg, width=0.6))
        for item in (self.promise, self.latency_line, self.latency, self.unreachable):
            self.latency_plot.addItem(item)
        for item in (self.promised_cosine, self.reference, self.fidelity_line, self.fidelity):
            self.fidelity_plot.addItem(item)
        self.markers: list[tuple[pg.PlotWidget, pg.InfiniteLine]] = []
        self.rows: list[CheckResult] = []

    def _plot(self, label: str) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        _style(plot, self.dark, "checks, oldest first (local time)", label)
        plot.setMouseEnabled(y=False)
        plot.getAxis("left").setWidth(88)  # the two plots' time axes line up
        return plot

    def show_rows(self, rows: list[CheckResult]) -> None:
        """One device's checks, oldest first."""
        self.rows = rows
        t = np.arange(len(rows), dtype=float)
        for plot in (self.latency_plot, self.fidelity_plot):
            plot.getAxis("bottom").setTicks([time_ticks(rows), []])
        median = np.array([_nan(r.latency_ms_median) for r in rows], dtype=float)
        promise = np.array([_nan(r.promise_latency_ms) for r in rows], dtype=float)
        worst = [worst_output(r) for r in rows]
        cosine = np.array([_nan(w.cosine if w else None) for w in worst], dtype=float)
        brushes = [QColor(VERDICT_COLORS[r.verdict]) for r in rows]
        self.promise.setData(*_steps(t, promise))
        self.latency_line.setData(t, median)
        self.latency.setData(self._spots(t, median, brushes))
        self.unreachable.setData([{"pos": (t[i], 0.0), "data": i} for i, r in enumerate(rows)
                                  if r.verdict is Verdict.UNREACHABLE])
        promised_cosine = np.array([_nan(r.promise_cosine) for r in rows], dtype=float)
        self.promised_cosine.setData(*_steps(t, promised_cosine))
        self.reference.setData(*_steps(t, self._first_of_release(rows, cosine)))
        self.fidelity_line.setData(t, cosine)
        self.fidelity.setData(self._spots(t, cosine, brushes))
        self._mark_releases(rows, t)
        self._fit(t, median, promise, np.concatenate([cosine, promised_cosine]))

    @staticmethod
    def _spots(t: np.ndarray, y: np.ndarray, brushes: list[QColor]) -> list[dict]:
        return [{"pos": (x, v), "brush": b, "data": i} for i, (x, v, b) in enumerate(zip(t, y, brushes, strict=True))
                if np.isfinite(v)]

    @staticmethod
    def _first_of_release(rows: list[CheckResult], cosine: np.ndarray) -> np.ndarray:
        """The cosine of each release's first check, held until the release changes: what `drift` compares to."""
        ref, first = np.full(len(rows), np.nan), {}
        for i, r in enumerate(rows):
            if r.release is not None and np.isfinite(cosine[i]):
                first.setdefault(r.release, cosine[i])
            ref[i] = first.get(r.release, np.nan) if r.release is not None else np.nan
        return ref

    def _mark_releases(self, rows: list[CheckResult], t: np.ndarray) -> None:
        for plot, line in self.markers:
            plot.removeItem(line)
        self.markers = []
        color = theme.chart_colors(self.dark)["foreground"]
        for i, release in release_starts(rows):
            for plot, label in ((self.latency_plot, release), (self.fidelity_plot, None)):
                line = pg.InfiniteLine(pos=t[i], angle=90, pen=pg.mkPen(color, width=1, style=Qt.DotLine),
                                       label=_short(label) if label else None,
                                       labelOpts={"position": 0.98, "color": color, "anchors": [(0, 0), (0, 0)]})
                plot.addItem(line)
                self.markers.append((plot, line))

    def _fit(self, t: np.ndarray, median: np.ndarray, promise: np.ndarray, cosine: np.ndarray) -> None:
        if not len(t):
            return
        self.latency_plot.setXRange(-0.5, max(len(t) - 0.5, 4.5), padding=0)
        ms = np.concatenate([median[np.isfinite(median)], promise[np.isfinite(promise)]])
        if len(ms):
            top = float(ms.max()) * 1.25  # room for the release labels above, and for the × below
            self.latency_plot.setYRange(-top * 0.04, top, padding=0)
        cos = cosine[np.isfinite(cosine)]
        if len(cos):
            lo, hi = float(cos.min()), float(cos.max())
            pad = max((hi - lo) * 0.15, 5e-5)
            self.fidelity_plot.setYRange(lo - pad, hi + pad, padding=0)

    def _tip(self, x, y, data) -> str:
        r = self.rows[data]
        lines = [f"{r.checked_at}  {r.verdict.value}", r.reason, f"release {r.release or 'unknown'}"]
        if r.latency_ms_median is not None:
            lines.append(f"median {r.latency_ms_median:.3f} ms, p90 {_fmt(r.latency_ms_p90)} ms")
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:.3f}"


def _short(release: str) -> str:
    return release if len(release) <= 22 else release[:12] + "…" + release[-8:]


def legend_html() -> str:
    """The chart's key, as a line of text under it."""
    dots = "  ".join(f"<span style='color:{VERDICT_COLORS[v]}'>●</span> {v.value}"
                     for v in (Verdict.OK, Verdict.SLOWER, Verdict.DRIFT))
    return (f"{dots}   │   <span style='color:{theme.ACCENT}'>- - -</span> what the bundle promised"
            "   │   -·- fidelity of the release's first check   │   ┆ a release's first check   │   × no answer")
