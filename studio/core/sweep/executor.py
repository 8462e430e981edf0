"""Where a sweep's heavy work runs: in worker processes on this machine (LocalExecutor) or as tasks on a Ray cluster
(studio.core.sweep.cluster.client.ClusterExecutor). The scheduler, journal, budget and cancel do not know which."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from studio.core.base.errors import StudioError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken
from studio.core.optimize.stage import FloatStage, StageRequest, float_stage
from studio.core.quantize.backend import BACKENDS
from studio.core.sweep.jobs import CandidateJob, CandidateOutcome, candidate_job
from studio.core.sweep.scheduler import MeasureGate


class LatencyOn(StrEnum):
    LOCAL = "local"  # this machine's measure gate times every candidate alone (the default)
    CLUSTER = "cluster"  # the node that built a candidate times it (busy nodes: noisier numbers)


@dataclass(frozen=True)
class ClusterOptions:
    """`--cluster ADDRESS` (host:port of a Ray head, or ray://host:port) and where latency is measured."""
    address: str
    latency_on: LatencyOn = LatencyOn.LOCAL

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise StudioError("--cluster needs the address of a Ray cluster's head, e.g. 10.0.0.5:6379")
        object.__setattr__(self, "latency_on", LatencyOn(self.latency_on))

    @property
    def host_port(self) -> tuple[str, int] | None:
        """Where the head (or its Ray Client server) listens; None for an address Ray resolves itself ("auto")."""
        host, _, port = self.address.strip().removeprefix("ray://").rpartition(":")
        return (host.strip("[]"), int(port)) if host and port.isdigit() else None


class ExecutorLost(StudioError):
    """The executor itself is gone (the cluster connection was lost): the sweep stops; a re-run resumes."""


@dataclass(frozen=True, eq=False)
class Built:
    """A candidate finished and evaluated: its outcome, the node that built it, and its latency when that node
    timed it (None: it is timed on this machine)."""
    outcome: CandidateOutcome
    node: str | None = None
    latency: dict[str, Any] | None = None


class Executor(Protocol):
    slots: int  # how many tasks it runs at once when the user does not say (--workers)

    def stage(self, request: StageRequest, cancel: CancelToken) -> FloatStage:
        """The group's float stage, its files in request.work on this machine."""

    def share(self, model: str, files: list[str], data_path: str) -> None:
        """Hand the sweep's model and evaluation data over once, before any task."""

    def candidate(self, job: CandidateJob, stage_dir: Path, cancel: CancelToken, what: str) -> Built:
        """One candidate finished from the float stage in stage_dir into job.out on this machine, and evaluated."""

    def record(self) -> dict[str, Any] | None:
        """What results.json says about where the work ran (None: on this machine)."""

    def close(self) -> None: ...


class LocalExecutor:
    """Worker processes on this machine; conversions hold back latency measurements (the measure gate)."""
    slots = 2

    def __init__(self, gate: MeasureGate):
        self._gate = gate

    def stage(self, request: StageRequest, cancel: CancelToken) -> FloatStage:
        with self._gate.work():
            return float_stage(request, cancel=cancel)

    def share(self, model: str, files: list[str], data_path: str) -> None:
        pass  # the worker processes read them where they are

    def candidate(self, job: CandidateJob, stage_dir: Path, cancel: CancelToken, what: str) -> Built:
        with self._gate.work():
            return Built(run_job(candidate_job, job, cancel=cancel, what=what, kind=BACKENDS[job.recipe.target].kind))

    def record(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        pass
