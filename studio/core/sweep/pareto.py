"""The Pareto front over (accuracy up, latency down, size down), and the best candidate under a bound."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


def best(candidates: Iterable[CandidateResult], reference_score: float | None = None,
         max_drop: float | None = None) -> str | None:
    """Fastest candidate within `max_drop` points of the reference; without a bound, the most accurate (then
    fastest)."""
    ok = _measured(candidates)
    if max_drop is not None and reference_score is not None:
        within = [c for c in ok if reference_score - c.score <= max_drop + 1e-9]
        if within:
            return min(within, key=lambda c: (c.latency, c.size)).id
        return None
    if not ok:
        return None
    return max(ok, key=lambda c: (c.score, -c.latency)).id


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
