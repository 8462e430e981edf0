"""A sweep's results on disk: candidate rows, the journal, results.json and results.csv (rewritten after every
candidate), candidate.json for export, and the trade-off plot."""
from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.base import atomic
from studio.core.base.versions import host, library_versions
from studio.core.recipe.grid import Candidate
from studio.core.sweep.jobs import CandidateOutcome
from studio.core.sweep.pareto import pareto_ids, recommend
from studio.core.sweep.records import CandidateFinished, CandidateResult, CandidateStatus
from studio.core.sweep.run_folder import RunFolder

RESULTS_VERSION = 1
CSV_FIELDS = ["id", "target", "quant", "prune", "prune_ratio", "status", "accuracy", "top5",
              "agreement", "latency_ms_median", "latency_ms_p90", "device_latency_ms_median", "size_bytes", "pareto",
              "float_layers", "error", "metric_value", "latency_spread", "noisy"]


def failed_row(c: Candidate, error: str) -> CandidateResult:
    return CandidateResult(id=c.id, recipe=c.recipe, status=CandidateStatus.FAILED, error=error)


def measured_row(c: Candidate, got: CandidateOutcome, latency: dict[str, Any], *, labelled: bool,
                 path: str, built_on: str | None = None) -> CandidateResult:
    """The row of a candidate that finished: its scores (accuracy only with labels) and its measured latency."""
    s = got.scores
    return CandidateResult(
        id=c.id, recipe=c.recipe, status=CandidateStatus.DEGRADED if s.degraded else CandidateStatus.OK,
        error=f"below the quality gate: {s.degraded}" if s.degraded else None,
        accuracy=s.accuracy if labelled else None, metric_value=s.value, scoring_output=s.scoring_output,
        fidelity=tuple(f.to_dict() for f in s.fidelity),
        agreement=s.agreement, cosine=s.cosine, sqnr_db=s.sqnr_db, size_bytes=got.size_bytes,
        float_layers=tuple(got.float_layers), seconds=got.seconds, notes=tuple(got.notes), bound_met=got.bound_met,
        path=path, latency_ms_median=latency["median_ms"], latency_ms_p90=latency["p90_ms"],
        peak_rss_mb=latency["peak_rss_mb"], runtime=latency["runtime"], runtime_version=latency["runtime_version"],
        threads=latency["threads"], runs=latency["runs"], latency_round_medians_ms=tuple(latency["round_medians_ms"]),
        latency_spread=latency["spread"], noisy=latency["noisy"], built_on=built_on)


def read_journal(path: Path) -> dict[str, CandidateResult]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = CandidateResult.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a crash (or not a row): that candidate simply runs again
            done[row.id] = row
    return done


def with_pareto_flags(rows: Sequence[CandidateResult]) -> list[CandidateResult]:
    front = set(pareto_ids(rows))
    return [r.with_pareto(r.id in front) for r in rows]


@dataclass(frozen=True)
class ResultsContext:
    """What every rewrite of results.json repeats: the sweep's identity, its reference and its options."""
    config: dict[str, Any]  # RUN/sweep.json
    source_format: str
    reference: dict[str, Any]  # the original model's scores on the data: accuracy, samples, labelled, synthetic
    order: tuple[str, ...]  # every candidate id of the grid, in its order
    max_drop: float | None
    threads: int
    started: float  # time.monotonic() when the sweep started
    cluster: dict[str, Any] | None = None  # where the work ran: the Ray cluster's address, nodes and their versions

    @property
    def labelled(self) -> bool:
        return bool(self.reference.get("labelled"))

    @property
    def metric(self) -> str:
        """What the candidates' score is, as results.json and the plot name it."""
        default = "top-1 accuracy (%)" if self.labelled else "top-1 agreement with the original (%)"
        return str(self.reference.get("metric_name") or default)

    @property
    def metric_kind(self) -> str:
        return str(self.reference.get("metric") or ("accuracy" if self.labelled else "agreement"))

    @property
    def reference_score(self) -> float | None:
        if "metric_value" in self.reference:
            return self.reference["metric_value"]
        return self.reference.get("accuracy") if self.labelled else 100.0


class ResultsWriter:
    """Records finished candidates (journal line, fsynced, then results.json and .csv) from any worker thread."""

    def __init__(self, run: RunFolder, context: ResultsContext):
        self.run, self.context = run, context
        self.results = read_journal(run.journal)
        self._lock = threading.Lock()

    def record(self, row: CandidateResult) -> CandidateFinished:
        with self._lock:
            self.results[row.id] = row
            with open(self.run.journal, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(atomic.json_safe(row.to_dict())) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            rows = self.rows()
            doc = self._write(rows, interrupted=False, skipped=())
        flagged = next(r for r in rows if r.id == row.id)
        return CandidateFinished(flagged, tuple(doc["pareto"]), doc["best"])

    def rows(self) -> list[CandidateResult]:
        """The grid's candidates in its order, then those added to the run later (kept layers in float)."""
        added = [r for i, r in self.results.items() if i not in self.context.order]
        return with_pareto_flags([self.results[i] for i in self.context.order if i in self.results] + added)

    def write(self, *, interrupted: bool, skipped: Sequence[str] = ()) -> dict[str, Any]:
        """Rewrite results.json and results.csv; returns the results document."""
        with self._lock:
            return self._write(self.rows(), interrupted=interrupted, skipped=skipped)

    def _write(self, rows: list[CandidateResult], *, interrupted: bool, skipped: Sequence[str]) -> dict[str, Any]:
        doc = self._document(rows, interrupted=interrupted, skipped=skipped)
        atomic.write_json(self.run.results, doc)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in doc["candidates"]:
            writer.writerow({**row, "float_layers": ";".join(row.get("float_layers") or [])})
        atomic.write_text(self.run.results_csv, buf.getvalue())
        return doc

    def _document(self, rows: list[CandidateResult], *, interrupted: bool, skipped: Sequence[str]) -> dict[str, Any]:
        ctx, config, reference = self.context, self.context.config, self.context.reference
        sens = self.run.sensitivity
        return {"schema_version": RESULTS_VERSION,
                "model": {"path": config["model"], "sha256": config["model_sha256"], "format": ctx.source_format},
                "data": {"path": config["data"], "samples": reference.get("samples"), "labelled": ctx.labelled,
                         "synthetic": reference.get("synthetic", False)},
                "metric": ctx.metric,
                "reference": {k: v for k, v in reference.items()
                              if k in ("accuracy", "samples", "metric", "metric_value", "scoring_output", "inputs")},
                "grid": config["grid"], "max_drop": ctx.max_drop, "candidates": [r.to_dict() for r in rows],
                "pareto": [r.id for r in rows if r.pareto],
                **self._recommendation(rows),
                "skipped": list(skipped), "pending": [i for i in ctx.order if i not in self.results],
                "interrupted": interrupted, "elapsed_s": round(time.monotonic() - ctx.started, 2), "host": host(),
                "versions": library_versions(), "threads": ctx.threads,
                "sensitivity": json.loads(sens.read_text(encoding="utf-8")) if sens.is_file() else None,
                **({"cluster": ctx.cluster} if ctx.cluster else {})}

    def _recommendation(self, rows: list[CandidateResult]) -> dict[str, Any]:
        """"best": the fastest candidate within the bound of the source, and "recommendation" saying why."""
        ctx = self.context
        pick = recommend(rows, ctx.reference_score, ctx.max_drop, ctx.metric_kind)
        return {"best": pick.id, "recommendation": pick.to_dict()}

    def candidate_meta(self, row: CandidateResult) -> dict[str, Any]:
        """RUN/candidates/ID/candidate.json: what `studio export RUN/ID` puts in the bundle's manifest."""
        config = self.context.config
        return {"id": row.id, "recipe": row.recipe.to_dict(),
                "source": {"path": config["model"], "sha256": config["model_sha256"],
                           "format": self.context.source_format},
                "status": str(row.status), "degraded": row.error if row.status == CandidateStatus.DEGRADED else None,
                "metrics": {"accuracy_top1": row.accuracy, "agreement": row.agreement,
                            "metric": self.context.metric, "metric_value": row.metric_value,
                            "scoring_output": row.scoring_output, "fidelity": list(row.fidelity),
                            "latency_ms_median": row.latency_ms_median, "latency_ms_p90": row.latency_ms_p90,
                            "peak_rss_mb": row.peak_rss_mb, "runtime": row.runtime,
                            "runtime_version": row.runtime_version, "threads": row.threads,
                            "latency_spread": row.latency_spread, "noisy": row.noisy,
                            "size_bytes": row.size_bytes, "host": host(), "measured_by": "studio sweep"}}

    def plot(self) -> None:
        from studio.core.sweep.plot import plot_tradeoff

        ctx = self.context
        plot_tradeoff(self.rows(), self.run.plot, model_path=ctx.config["model"], metric=ctx.metric,
                      threads=ctx.threads)
