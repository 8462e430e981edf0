"""The Pareto front over (accuracy up, latency down, size down), and the best candidate under a bound."""
from __future__ import annotations


def score(c: dict) -> float | None:
    """What 'accuracy' means for ranking: top-1 with labels, else top-1 agreement (or cosine) with the original."""
    if c.get("accuracy") is not None:
        return c["accuracy"]
    return c.get("agreement")


def dominates(a: dict, b: dict) -> bool:
    sa, sb = score(a), score(b)
    no_worse = sa >= sb and a["latency_ms_median"] <= b["latency_ms_median"] and a["size_bytes"] <= b["size_bytes"]
    better = sa > sb or a["latency_ms_median"] < b["latency_ms_median"] or a["size_bytes"] < b["size_bytes"]
    return no_worse and better


def pareto_ids(candidates: list[dict]) -> list[str]:
    ok = [c for c in candidates if c.get("status") == "ok" and score(c) is not None
          and c.get("latency_ms_median") is not None]
    return [c["id"] for c in ok if not any(dominates(o, c) for o in ok if o is not c)]


def best(candidates: list[dict], reference_score: float | None = None, max_drop: float | None = None) -> str | None:
    """Fastest candidate within `max_drop` points of the reference; without a bound, the most accurate (then
    fastest)."""
    ok = [c for c in candidates if c.get("status") == "ok" and score(c) is not None]
    if max_drop is not None and reference_score is not None:
        within = [c for c in ok if reference_score - score(c) <= max_drop + 1e-9]
        if within:
            return min(within, key=lambda c: (c["latency_ms_median"], c["size_bytes"]))["id"]
        return None
    if not ok:
        return None
    return max(ok, key=lambda c: (score(c), -c["latency_ms_median"]))["id"]


def front_2d(candidates: list[dict]) -> list[dict]:
    """The accuracy-vs-latency staircase (size ignored), sorted by latency: the line a chart draws."""
    ok = sorted((c for c in candidates if c.get("status") == "ok" and score(c) is not None
                 and c.get("latency_ms_median") is not None), key=lambda c: (c["latency_ms_median"], -score(c)))
    front, best_score = [], float("-inf")
    for c in ok:
        if score(c) > best_score:
            front.append(c)
            best_score = score(c)
    return front
