"""The Pareto front and the best pick, against brute force over random candidate sets."""
import itertools
import random

import pytest

from studio.core.recipe.recipe import Recipe
from studio.core.sweep.pareto import front_2d, pareto_ids, recommend
from studio.core.sweep.records import CandidateResult, CandidateStatus


def _random_rows(rng: random.Random, n: int) -> list[CandidateResult]:
    rows = []
    for i in range(n):
        failed = rng.random() < 0.15
        degraded = not failed and rng.random() < 0.15
        labelled = rng.random() < 0.7
        score = float(rng.choice([90, 91, 92, 93]) if rng.random() < 0.5 else rng.uniform(80, 100))
        rows.append(CandidateResult(
            id=f"c{i}", recipe=Recipe(), status=CandidateStatus.FAILED if failed else
            CandidateStatus.DEGRADED if degraded else CandidateStatus.OK,
            accuracy=None if failed or not labelled else score, agreement=None if failed else score - 1,
            latency_ms_median=None if failed else float(rng.choice([1, 2, 3]) if rng.random() < 0.5
                                                        else rng.uniform(0.5, 5)),
            size_bytes=None if failed else rng.choice([1000, 2000, rng.randint(500, 5000)])))
    return rows


def _key(c: CandidateResult) -> tuple[float, float, int]:
    score = c.accuracy if c.accuracy is not None else c.agreement
    return score, c.latency_ms_median, c.size_bytes


@pytest.mark.parametrize("seed", range(40))
def test_front_equals_brute_force(seed):
    rows = _random_rows(random.Random(seed), random.Random(seed).randint(0, 25))
    ok = [c for c in rows if c.status == "ok"]

    def dominated(c):
        s, lat, size = _key(c)
        return any(_key(o)[0] >= s and _key(o)[1] <= lat and _key(o)[2] <= size and _key(o) != _key(c) for o in ok)
    assert pareto_ids(rows) == [c.id for c in ok if not dominated(c)]


@pytest.mark.parametrize("seed", range(40))
def test_recommendation_and_staircase_equal_brute_force(seed):
    rows = _random_rows(random.Random(seed), 12)
    ok = [c for c in rows if c.status == "ok"]  # degraded and failed candidates are never recommended
    reference = max((_key(c)[0] for c in ok), default=95.0) + random.Random(seed).choice([0.0, 0.5, 3.0])
    within = [c for c in ok if reference - _key(c)[0] <= 1.0 + 1e-9]  # no bound given: 1 point
    pick = recommend(rows, reference, None, "accuracy")
    assert pick.id == (min(within, key=lambda c: (c.latency_ms_median, c.size_bytes)).id if within else None)
    if ok and not within:  # the closest is named with how far it misses
        closest = max(ok, key=lambda c: (_key(c)[0], -c.latency_ms_median))
        assert pick.closest == closest.id and pick.miss == pytest.approx(reference - _key(closest)[0] - 1.0)
    within = [c for c in ok if 95.0 - _key(c)[0] <= 2.0 + 1e-9]
    expected = min(within, key=lambda c: (c.latency_ms_median, c.size_bytes)).id if within else None
    assert recommend(rows, 95.0, 2.0).id == expected
    fastest = min(ok, key=lambda c: (c.latency_ms_median, c.size_bytes)).id if ok else None
    assert recommend(rows, 95.0, None, "cosine").id == fastest  # the gate is the bound: every ok one qualifies
    line = front_2d(rows)
    for c in ok:  # every point is on the line, or something no slower scores at least as well
        if c not in line:
            assert any(f.latency_ms_median <= c.latency_ms_median and _key(f)[0] >= _key(c)[0] for f in line)
    assert all(a.latency_ms_median <= b.latency_ms_median and _key(a)[0] < _key(b)[0]
               for a, b in itertools.pairwise(line))
