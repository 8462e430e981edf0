"""Latency is the median of several rounds' medians with their spread recorded; rounds that disagree are timed again
once and, when they still disagree, the candidate is flagged noisy in results.json and the sweep's table. A fake
runner and clock make the timings exact: each run costs what the test says, no sleeping."""
import json
import statistics
import time
from types import SimpleNamespace

import numpy as np
import pytest

from studio.commands.sweep_cmd import print_table
from studio.core.measure import evaluate
from studio.core.measure.fidelity import Metric, OutputFidelity
from studio.core.measure.latency import LatencyOptions
from studio.core.measure.scores import Scores
from studio.core.recipe.grid import Candidate
from studio.core.recipe.recipe import Recipe
from studio.core.sweep.jobs import CandidateOutcome
from studio.core.sweep.records import CandidateResult
from studio.core.sweep.results import measured_row

OPTIONS = LatencyOptions(rounds=5, warmup=3, runs=20, min_seconds=0.0)  # exactly 4 timed runs a round


class FakeRunner:
    """Each run() advances the fake clock by cost(i), i counting the timed runs (warm-up runs cost 1 ms, uncounted)."""
    runtime = "onnxruntime"

    def __init__(self, clock, cost):
        self.clock, self.cost, self.calls = clock, cost, 0
        self.inputs = [SimpleNamespace(name="x", shape=(1, 4), dtype=np.dtype(np.float32))]

    def run(self, feeds):
        timed = self.calls - OPTIONS.warmup
        self.clock.now += self.cost(timed) / 1000 if timed >= 0 else 0.001
        self.calls += 1


@pytest.fixture
def timed(monkeypatch):
    """measure(cost) -> (the latency dict, the fake runner): cost(i) is the ms the i-th timed run takes."""
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(time, "perf_counter", lambda: clock.now)

    def measure(cost):
        runner = FakeRunner(clock, cost)
        monkeypatch.setattr(evaluate, "open_runner", lambda path, threads=1: runner)
        return evaluate.measure_latency("fake.onnx", None, OPTIONS), runner
    return measure


def per_round(costs_by_round):
    """A cost function: run i of the timed runs costs costs_by_round[round of i] (+ a small ramp inside a round)."""
    k = OPTIONS.runs_per_round
    return lambda i: costs_by_round[(i // k) % len(costs_by_round)] + 0.01 * (i % k)


def test_latency_is_the_median_of_the_round_medians(timed):
    costs = [1.0, 1.1, 0.95, 1.05, 1.02]  # within 25% of each other: no second measurement
    lat, runner = timed(per_round(costs))
    k = OPTIONS.runs_per_round
    expected_rounds = [statistics.median([c + 0.01 * j for j in range(k)]) for c in costs]
    assert lat["rounds"] == 5 and lat["runs"] == 5 * k and runner.calls == OPTIONS.warmup + 5 * k
    assert lat["round_medians_ms"] == pytest.approx(expected_rounds, rel=1e-6)
    assert lat["median_ms"] == pytest.approx(sorted(expected_rounds)[2], rel=1e-6)
    assert lat["spread"] == pytest.approx((max(expected_rounds) - min(expected_rounds)) / sorted(expected_rounds)[2],
                                          rel=1e-6)
    every = sorted(c + 0.01 * j for c in costs for j in range(k))
    assert lat["mean_ms"] == pytest.approx(sum(every) / len(every), rel=1e-6)
    assert lat["p90_ms"] == pytest.approx(every[int(0.9 * len(every))], rel=1e-6)
    assert lat["noisy"] is False and lat["remeasured"] is False


def test_rounds_that_keep_disagreeing_are_timed_again_once_and_flagged_noisy(timed):
    lat, runner = timed(per_round([1.0, 2.0]))  # every other round twice as slow, in both measurements
    k = OPTIONS.runs_per_round
    assert lat["remeasured"] is True and lat["noisy"] is True
    assert runner.calls == OPTIONS.warmup + 2 * 5 * k  # all rounds once more, and no third time
    assert lat["runs"] == 5 * k and lat["spread"] > 0.25


def test_an_unlucky_first_measurement_is_timed_again_and_not_flagged(timed):
    k, rounds = OPTIONS.runs_per_round, OPTIONS.rounds
    lat, runner = timed(lambda i: (3.0 if i // k == 1 else 1.0) if i < rounds * k else 1.0)  # one slow round first
    assert lat["remeasured"] is True and lat["noisy"] is False
    assert runner.calls == OPTIONS.warmup + 2 * rounds * k
    assert lat["round_medians_ms"] == pytest.approx([1.0] * rounds) and lat["spread"] == pytest.approx(0.0)


def test_latency_options_refuse_zero_rounds():
    from studio.core.base.errors import StudioError

    with pytest.raises(StudioError, match="rounds"):
        LatencyOptions(rounds=0)


def _row(noisy: bool) -> CandidateResult:
    fidelity = OutputFidelity("y", cosine=0.999, sqnr_db=30.0, max_abs_error=0.01, class_scores=True,
                              top1_agreement=99.0)
    scores = Scores(Metric.ACCURACY, "top-1 accuracy (%)", 98.0, accuracy=98.0, fidelity=(fidelity,),
                    scoring_output="y")
    outcome = CandidateOutcome(scores, size_bytes=1000, seconds=1.0)
    latency = {"median_ms": 1.5, "p90_ms": 2.0, "peak_rss_mb": 3.0, "runtime": "onnxruntime",
               "runtime_version": "1", "threads": 1, "runs": 20, "round_medians_ms": [1.0, 2.0, 1.5, 1.0, 2.0],
               "spread": 2 / 3, "noisy": noisy}
    return measured_row(Candidate("onnx-int8-p0.00", Recipe()), outcome, latency, labelled=True,
                        path="candidates/onnx-int8-p0.00/model.onnx")


def test_noisy_survives_into_results_json_and_the_table(tmp_path, capsys):
    noisy, steady = _row(True), _row(False)
    back = CandidateResult.from_dict(json.loads(json.dumps(noisy.to_dict())))
    assert back == noisy and back.noisy is True and back.latency_spread == pytest.approx(2 / 3)
    assert back.latency_round_medians_ms == (1.0, 2.0, 1.5, 1.0, 2.0)
    steady_row = CandidateResult.from_dict(steady.to_dict()).to_dict()
    doc = {"candidates": [noisy.to_dict(), {**steady_row, "id": "onnx-fp32-p0.00"}], "best": None,
           "reference": {}, "metric": "top-1", "data": {"samples": 10}, "skipped": []}
    print_table(json.loads(json.dumps(doc)), str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    noisy_line = next(line for line in lines if line.startswith("onnx-int8-p0.00"))
    steady_line = next(line for line in lines if line.startswith("onnx-fp32-p0.00"))
    assert "~1.5000" in noisy_line.split() and "1.5000" in steady_line.split()
    assert any(line.startswith("~ noisy latency") for line in lines)
