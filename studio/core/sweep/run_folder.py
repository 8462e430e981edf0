"""The layout of a sweep's run folder, in one place: the sweep, the CLI, the window and bundle export all use it.

    RUN/sweep.json         what this sweep is (model, data, grid, options); a re-run must match it to resume
    RUN/journal.jsonl      one line per finished candidate, appended and fsynced as each one finishes
    RUN/results.json|csv   all candidates with Pareto flags, rewritten atomically after each one
    RUN/sensitivity.json   per-layer sensitivity, when it was asked for
    RUN/tradeoff.png       accuracy vs latency, size as marker size, the Pareto front highlighted
    RUN/candidates/ID/     model.onnx|model.tflite and candidate.json, for `studio export RUN/ID`
    RUN/work/              shared float conversions (one per target and pruning ratio) and prepared data
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CANDIDATE_META = "candidate.json"  # in a candidate's folder (also when it was copied out of its run)


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "sweep.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def sensitivity(self) -> Path:
        return self.root / "sensitivity.json"

    @property
    def plot(self) -> Path:
        return self.root / "tradeoff.png"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def candidate(self, candidate_id: str) -> Path:
        """The folder of one candidate (what `studio export RUN/ID` reads)."""
        return self.candidates / candidate_id

    def candidate_meta(self, candidate_id: str) -> Path:
        """What `studio export RUN/ID` puts in the bundle's manifest."""
        return self.candidate(candidate_id) / CANDIDATE_META

    def stage(self, target: str, ratio: float) -> Path:
        """The shared float conversion of one (target, pruning ratio) group."""
        return self.work / f"{target}-p{ratio:.2f}"

    @property
    def has_results(self) -> bool:
        return self.results.is_file()

    @property
    def has_journal(self) -> bool:
        return self.journal.is_file()

    @classmethod
    def of_candidate(cls, path: str | os.PathLike) -> tuple[RunFolder, str] | None:
        """RUN/ID (as typed, or RUN/candidates/ID) names candidate ID of sweep run RUN; None if it does not."""
        p = Path(path)
        for run in (cls(p.parent), cls(p.parent.parent)):
            if run.has_results and run.candidate(p.name).exists():
                return run, p.name
        return None

    def mkdirs(self) -> None:
        self.candidates.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
