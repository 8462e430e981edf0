"""What a sweep produces, as typed records: one measured candidate (a row of results.json and results.csv) and the
events a running sweep sends to its listener (the window's preview page, `studio sweep --json`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from studio.core.recipe.recipe import PruneMethod, QuantMode, Recipe, Target


class CandidateStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    DEGRADED = "degraded"  # measured, but below the quality gate: never on the front, never recommended


# Keys written only when latency was measured (older results.json files have exactly these groups).
_TIMED = ("peak_rss_mb", "runtime", "runtime_version", "threads", "runs")


@dataclass(frozen=True)
class CandidateResult:
    """One candidate of a sweep as measured: its recipe, scores, latency, size and Pareto flag."""
    id: str
    recipe: Recipe
    status: CandidateStatus
    accuracy: float | None = None  # top-1 %, with labelled data only
    top5: float | None = None
    agreement: float | None = None  # top-1 agreement with the original (or cosine x 100), %
    cosine: float | None = None
    sqnr_db: float | None = None
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    size_bytes: int | None = None
    pareto: bool = False
    error: str | None = None  # why it failed, or why it is degraded
    path: str | None = None  # the model, relative to the run folder
    float_layers: tuple[str, ...] = ()  # layers kept in float by accuracy-aware quantization
    device_latency_ms_median: float | None = None
    seconds: float | None = None  # finishing and evaluating took this long
    notes: tuple[str, ...] | None = None
    bound_met: bool | None = None  # accuracy-aware mode: the drop bound was met
    peak_rss_mb: float | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    runs: int | None = None
    latency_round_medians_ms: tuple[float, ...] = ()  # the latency's rounds (an older Studio timed one)
    latency_spread: float | None = None  # (slowest - fastest round median) / latency_ms_median
    noisy: bool | None = None  # the rounds still disagreed after timing them again (None: not known)
    device: dict[str, Any] | None = None  # the device's timing, or its error
    metric_value: float | None = None  # the sweep's metric (results.json "metric") on the scoring output
    scoring_output: str | None = None
    fidelity: tuple[dict[str, Any], ...] = ()  # per output: cosine, sqnr_db, max_abs_error, top1_agreement
    built_on: str | None = None  # the cluster node that built it (None: this machine)

    @property
    def target(self) -> Target:
        return self.recipe.target

    @property
    def quant(self) -> QuantMode:
        return self.recipe.quantization.mode

    @property
    def prune(self) -> PruneMethod:
        return self.recipe.pruning.method

    @property
    def prune_ratio(self) -> float:
        return self.recipe.pruning.ratio

    @property
    def ok(self) -> bool:
        return self.status == CandidateStatus.OK

    @property
    def score(self) -> float | None:
        """The sweep's metric, which ranks candidates (rows of an older Studio: top-1 with labels, else agreement)."""
        if self.metric_value is not None:
            return self.metric_value
        return self.accuracy if self.accuracy is not None else self.agreement

    @property
    def noisy_note(self) -> str | None:
        """Why the latency is marked noisy ("~"), or None when it is not."""
        if not self.noisy:
            return None
        return (f"noisy latency: its {len(self.latency_round_medians_ms)} timing rounds differed by"
                f" {self.latency_spread or 0:.0%} of their median, also when timed again")

    def with_pareto(self, on_front: bool) -> CandidateResult:
        return self if self.pareto == on_front else replace(self, pareto=on_front)

    def to_dict(self) -> dict[str, Any]:
        """The row as results.json and the journal hold it (the keys and order of schema_version 1)."""
        row: dict[str, Any] = {
            "id": self.id, "target": str(self.target), "quant": str(self.quant), "prune": str(self.prune),
            "prune_ratio": self.prune_ratio, "status": str(self.status), "accuracy": self.accuracy,
            "top5": self.top5, "agreement": self.agreement, "cosine": self.cosine, "sqnr_db": self.sqnr_db,
            "latency_ms_median": self.latency_ms_median, "latency_ms_p90": self.latency_ms_p90,
            "size_bytes": self.size_bytes, "pareto": self.pareto, "error": self.error,
            "recipe": self.recipe.to_dict(), "path": self.path, "float_layers": list(self.float_layers),
            "device_latency_ms_median": self.device_latency_ms_median}
        if self.seconds is not None:
            row.update(seconds=self.seconds, notes=list(self.notes or ()))
        if self.bound_met is not None:
            row["bound_met"] = self.bound_met
        if self.latency_ms_median is not None:
            row.update({k: getattr(self, k) for k in _TIMED})
        if self.latency_spread is not None:
            row.update(latency_round_medians_ms=list(self.latency_round_medians_ms),
                       latency_spread=self.latency_spread, noisy=self.noisy)
        if self.device is not None:
            row["device"] = self.device
        if self.metric_value is not None or self.fidelity:
            row.update(metric_value=self.metric_value, scoring_output=self.scoring_output,
                       fidelity=list(self.fidelity))
        if self.built_on is not None:
            row["built_on"] = self.built_on
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> CandidateResult:
        """A row of results.json or the journal (raises KeyError or ValueError when it is not one)."""
        return cls(id=row["id"], recipe=Recipe.from_dict(row["recipe"]), status=CandidateStatus(row["status"]),
                   accuracy=row.get("accuracy"), top5=row.get("top5"), agreement=row.get("agreement"),
                   cosine=row.get("cosine"), sqnr_db=row.get("sqnr_db"),
                   latency_ms_median=row.get("latency_ms_median"), latency_ms_p90=row.get("latency_ms_p90"),
                   size_bytes=row.get("size_bytes"), pareto=bool(row.get("pareto")), error=row.get("error"),
                   path=row.get("path"), float_layers=tuple(row.get("float_layers") or ()),
                   device_latency_ms_median=row.get("device_latency_ms_median"), seconds=row.get("seconds"),
                   notes=tuple(row["notes"]) if row.get("notes") is not None else None,
                   bound_met=row.get("bound_met"), device=row.get("device"),
                   metric_value=row.get("metric_value"), scoring_output=row.get("scoring_output"),
                   fidelity=tuple(row.get("fidelity") or ()), built_on=row.get("built_on"),
                   latency_round_medians_ms=tuple(row.get("latency_round_medians_ms") or ()),
                   latency_spread=row.get("latency_spread"), noisy=row.get("noisy"),
                   **{k: row.get(k) for k in _TIMED})


@dataclass(frozen=True)
class CandidateFinished:
    """A candidate finished (measured or failed); `pareto` and `best` are the whole front and pick after it."""
    candidate: CandidateResult
    pareto: tuple[str, ...]
    best: str | None


@dataclass(frozen=True)
class SensitivityReady:
    sensitivity: dict[str, Any]  # {"quantization": {...}, "pruning": {...}}, as RUN/sensitivity.json holds it


@dataclass(frozen=True)
class SweepFinished:
    """The sweep stopped: done, out of time, or cancelled (then `results["interrupted"]` is true)."""
    results: dict[str, Any]  # the results.json document


SweepEvent = CandidateFinished | SensitivityReady | SweepFinished
