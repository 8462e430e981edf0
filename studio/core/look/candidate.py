"""The diff of a sweep candidate (RUN/ID) with its source, for Preview: the source itself where it is of the
candidate's format, else the run's float conversion of it; compared on the run's own evaluation samples, with the
first input of every listed sample kept for thumbnails."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.base.errors import StudioError
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.look.diff import DiffOptions, DiffSamples, ModelDiff, diff_models
from studio.core.sweep import eval_data
from studio.core.sweep.run_folder import RunFolder

SAMPLES = 64  # evaluation samples compared: every tensor of both models is held for each


class CandidateDiffError(StudioError):
    """The candidate cannot be diffed (not in a run, its source and float conversion both unreadable)."""


@dataclass(frozen=True, eq=False)
class CandidateDiff:
    candidate: str
    source: str  # the model the candidate is compared with
    model: str  # the candidate's own model file (RUN/candidates/ID/model.onnx or .tflite)
    diff: ModelDiff
    inputs: tuple[np.ndarray, ...]  # the first input of each of diff.samples, in that order

    def input_of(self, index: int) -> np.ndarray:
        """The first input of sample `index` (one of diff.samples)."""
        return self.inputs[[s.index for s in self.diff.samples].index(index)]


def diff_candidate(path: str | os.PathLike, *, labels: str | None = None, samples: int = SAMPLES,
                   report: Report = ignore, cancel: CancelToken | None = None) -> CandidateDiff:
    """Candidate RUN/ID against its source; `labels`: a class names file for a dataset without its own."""
    found = RunFolder.of_candidate(path)
    if found is None:
        raise CandidateDiffError("is not a candidate of a sweep run (give RUN/ID, with ID one of RUN/candidates)", path)
    run, cid = found
    model = _candidate_model(run, cid)
    source = reference_model(run, model.suffix)
    reference = _json(run.work / "reference.json")
    data = eval_data.read(run.work / "data.npz", eval_data.inputs_from_json(reference["inputs"]))
    x = data.samples.head(samples)
    y = data.y[:len(x)] if data.y is not None and data.y.ndim == 1 else None
    prepared = DiffSamples(x, y, _class_names(run, labels), bool(reference.get("synthetic")))
    d = diff_models(source, model, DiffOptions(samples=samples), data=prepared, report=report, cancel=cancel)
    first = x.arrays[0]
    inputs = tuple(first if x.constant[0] else first[s.index] for s in d.samples)
    return CandidateDiff(cid, source, str(model), d, inputs)


def reference_model(run: RunFolder, suffix: str) -> str:
    """The source where diff reads it and it is of the candidate's format, else the run's unpruned float conversion
    to that format."""
    from studio.core.sweep.sweep import load_stage

    source = str(_json(run.config)["model"])
    if Path(source).suffix.lower() == suffix.lower() and Path(source).is_file():
        return source
    stage = load_stage(run.stage(suffix.lstrip("."), 0.0) / "stage.pkl")
    if stage is None or not Path(stage.float_path).is_file():
        raise CandidateDiffError(f"holds no unpruned float {suffix} model to compare with, and the source"
                                 f" {Path(source).name} is not one: run the sweep again with pruning 0 in its grid",
                                 run.work)
    return stage.float_path


def _candidate_model(run: RunFolder, cid: str) -> Path:
    folder = run.candidate(cid)
    found = sorted(folder.glob("model.onnx")) + sorted(folder.glob("model.tflite"))
    if len(found) != 1:
        raise CandidateDiffError("holds no model.onnx or model.tflite (the candidate failed)", folder)
    return found[0]


def _class_names(run: RunFolder, labels: str | None) -> tuple[str, ...] | None:
    """The sweep dataset's own class names, else those of the labels file given."""
    from studio.core.bundle.bundle import read_labels
    from studio.core.data.datasets import load_dataset

    data = _json(run.config).get("data")
    named = load_dataset(data, limit=1).labels if data and Path(data).exists() else None
    if named:
        return tuple(named)
    return tuple(read_labels(labels)) if labels else None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CandidateDiffError(f"cannot be read ({exc.__class__.__name__}): run the sweep again", path) from None
