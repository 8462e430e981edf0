"""Latency in rounds: one round can be unlucky on a shared machine, the median of several rounds' medians is not, and
rounds that disagree say the figure is noisy."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from studio.core.base.errors import StudioError
from studio.core.base.progress import Report, ignore


@dataclass(frozen=True)
class LatencyOptions:
    """How a model is timed: `warmup` untimed runs, then `rounds` rounds that together take at least `runs` runs
    and `min_seconds`; rounds whose medians spread by more than `max_spread` (of their median) are timed again
    once, and flagged noisy when they still do."""
    threads: int = 1
    rounds: int = 5
    warmup: int = 10
    runs: int = 50
    min_seconds: float = 0.5
    max_spread: float = 0.25

    def __post_init__(self):
        if self.threads < 1 or self.rounds < 1 or self.runs < 1 or self.warmup < 0:
            raise StudioError("latency options: threads, rounds and runs must be at least 1, warm-up runs at least 0")
        if self.min_seconds < 0 or self.max_spread < 0:
            raise StudioError("latency options: min_seconds and max_spread must be at least 0")

    @property
    def runs_per_round(self) -> int:
        return math.ceil(self.runs / self.rounds)


@dataclass(frozen=True)
class Rounds:
    """The timed runs of each round, in ms."""
    times: tuple[tuple[float, ...], ...]

    @property
    def medians(self) -> list[float]:
        return [statistics.median(t) for t in self.times]

    @property
    def median(self) -> float:
        return statistics.median(self.medians)

    @property
    def spread(self) -> float:
        """(slowest - fastest round median) / the median of the round medians."""
        medians, mid = self.medians, self.median
        return (max(medians) - min(medians)) / mid if mid > 0 else 0.0

    def summary(self, options: LatencyOptions, remeasured: bool) -> dict:
        every = sorted(t for r in self.times for t in r)
        return {"median_ms": self.median, "p90_ms": every[min(len(every) - 1, int(0.9 * len(every)))],
                "mean_ms": statistics.fmean(every), "runs": len(every), "rounds": len(self.times),
                "round_medians_ms": self.medians, "spread": self.spread, "remeasured": remeasured,
                "noisy": self.spread > options.max_spread}


def timed_rounds(run, options: LatencyOptions, report: Report = ignore) -> dict:
    """Time `run()` in rounds (again once when they disagree); median of the round medians, p90 and mean of every
    run, the round medians, their spread, and whether it was re-measured and is still noisy."""
    rounds = _rounds(run, options, report, 0.0, 0.9)
    remeasured = rounds.spread > options.max_spread
    if remeasured:
        rounds = _rounds(run, options, report, 0.9, 0.99)
    return rounds.summary(options, remeasured)


def _rounds(run, options: LatencyOptions, report: Report, low: float, high: float) -> Rounds:
    times, what = [], "timing" if low == 0 else "timing again: the rounds disagreed"
    for i in range(options.rounds):
        times.append(_round(run, options))
        report(low + (high - low) * (i + 1) / options.rounds, what)
    return Rounds(tuple(times))


def _round(run, options: LatencyOptions) -> tuple[float, ...]:
    """At least runs_per_round runs and this round's share of min_seconds (at most 100 x runs_per_round runs)."""
    want, seconds = options.runs_per_round, options.min_seconds / options.rounds
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < want or (time.perf_counter() - start < seconds and len(times) < 100 * want):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    return tuple(times)
