"""The Pareto front over (accuracy up, latency down, size down), and the best candidate under a bound."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from studio.core.sweep.records import CandidateResult


@dataclass(frozen=True)
class _Point:
    id: str
    score: float
    latency: float
    size: int


def _measured(candidates: Iterable[CandidateResult]) -> list[_Point]:
    """The candidates that can be ranked: measured, with a score and a latency."""
    points = []
    for c in candidates:
        score, latency = c.score, c.latency_ms_median
        if c.ok and score is not None and latency is not None:
            points.append(_Point(c.id, score, latency, c.size_bytes or 0))
    return points


def dominates(a: _Point, b: _Point) -> bool:
    no_worse = a.score >= b.score and a.latency <= b.latency and a.size <= b.size
    better = a.score > b.score or a.latency < b.latency or a.size < b.size
    return no_worse and better


def pareto_ids(candidates: Iterable[CandidateResult]) -> list[str]:
    ok = _measured(candidates)
    return [c.id for c in ok if not any(dominates(o, c) for o in ok if o is not c)]


POINTS_BOUND = 1.0  # without --max-drop: within 1 point (accuracy, agreement) of the source


@dataclass(frozen=True)
class Recommendation:
    """The candidate a user wants: the fastest within the bound; else none, naming the closest and its miss."""
    id: str | None
    bound: float | None  # points below the source's score; None: every result that passed the gate qualifies
    met: bool
    closest: str | None = None
    miss: float | None = None  # how far the closest is beyond the bound
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "bound": self.bound, "met": self.met, "closest": self.closest, "miss": self.miss,
                "note": self.note}


def recommend(candidates: Iterable[CandidateResult], reference_score: float | None = None,
              max_drop: float | None = None, metric: str = "accuracy") -> Recommendation:
    """Fastest candidate within `max_drop` points of the reference (default: 1 point for accuracy and agreement;
    for cosine and SQNR the quality gate is the bound, which degraded candidates already failed)."""
    ok = _measured(candidates)
    bound = max_drop if max_drop is not None else (None if metric in ("cosine", "sqnr") else POINTS_BOUND)
    if bound is None or reference_score is None:
        pick = min(ok, key=lambda c: (c.latency, c.size)).id if ok else None
        return Recommendation(pick, None, pick is not None, note="" if ok else "no candidate passed the quality gate")
    within = [c for c in ok if reference_score - c.score <= bound + 1e-9]
    if within:
        return Recommendation(min(within, key=lambda c: (c.latency, c.size)).id, bound, True)
    if not ok:
        return Recommendation(None, bound, False, note="no candidate passed the quality gate")
    closest = max(ok, key=lambda c: (c.score, -c.latency))
    miss = round(reference_score - closest.score - bound, 4)
    return Recommendation(None, bound, False, closest.id, miss,
                          f"no candidate is within {bound:g} points of the source; the closest, {closest.id}, misses"
                          f" by {miss:g} points")


def front_2d(candidates: Iterable[CandidateResult],
             latency: Callable[[CandidateResult], float | None] = lambda c: c.latency_ms_median,
             ) -> list[CandidateResult]:
    """The accuracy-vs-latency staircase (size ignored), sorted by `latency`: the line a chart draws."""
    ok = []
    for c in candidates:
        score, x = c.score, latency(c)
        if c.ok and score is not None and x is not None:
            ok.append((x, -score, c))
    front, best_score = [], float("-inf")
    for _, negative, c in sorted(ok, key=lambda t: (t[0], t[1])):
        if -negative > best_score:
            front.append(c)
            best_score = -negative
    return front
