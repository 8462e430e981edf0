"""`studio diff A B`: what changed between two models (operators added, removed, changed; Q/DQ inserted; channels
before and after) and, on the user's samples, how far each matched tensor of B is from A's, worst first."""
from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base.errors import ModelLoadError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.look.graph import read_graph
from studio.core.look.match import Change, OpDiff, compare, match
from studio.core.look.numeric import SampleDiff, TensorError
from studio.core.quantize.backend import backend_for_file
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import ShapeRequest


@dataclass(frozen=True)
class DiffOptions:
    data: str | None = None  # a dataset (.npz, image folder); without it, seeded random inputs
    samples: int = 32
    shapes: ShapeRequest = field(default_factory=ShapeRequest)
    numeric: bool = True


@dataclass(frozen=True, eq=False)
class DiffSamples:
    """What the numeric side runs both models on: the samples, their class labels and class names where known."""
    samples: Samples
    y: np.ndarray | None = None  # [N] integer classes
    class_names: tuple[str, ...] | None = None
    synthetic: bool = False  # seeded random inputs


@dataclass(frozen=True)
class ModelDiff:
    a: str
    b: str
    ops: tuple[OpDiff, ...]  # B's run order, A's removed operators where they were
    tensors: tuple[TensorError, ...]  # worst (lowest SQNR) first
    samples: tuple[SampleDiff, ...]  # disagreeing samples first, then the lowest cosine
    sample_count: int
    synthetic: bool  # compared on random inputs: no --data
    class_names: tuple[str, ...] | None = None  # the data's class names, for SampleDiff's classes

    def class_name(self, k: int | None) -> str:
        """A class as the user knows it: its name where the data names it, else its number."""
        if k is None:
            return "-"
        return self.class_names[k] if self.class_names and 0 <= k < len(self.class_names) else str(k)

    def counts(self) -> dict[str, int]:
        return {c.value: sum(1 for o in self.ops if o.change == c) for c in Change}

    def inserted(self) -> dict[str, int]:
        return dict(Counter(o.op for o in self.ops if o.change == Change.INSERTED_QDQ))

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "counts": self.counts(), "inserted_qdq": self.inserted(),
                "ops": [o.to_dict() for o in self.ops if o.change != Change.SAME],
                "tensors": [t.to_dict() for t in self.tensors], "samples_compared": self.sample_count,
                "synthetic_inputs": self.synthetic, "class_names": list(self.class_names) if self.class_names else None,
                "worst_samples": [s.to_dict() for s in self.samples]}


def model_file(path: str | os.PathLike) -> str:
    """A model file, or the one model of a candidate folder (RUN/ID)."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("model.onnx")) + sorted(p.glob("model.tflite"))
        if len(found) != 1:
            raise ModelLoadError("is a folder without one model.onnx or model.tflite (give the model file)", path)
        return str(found[0])
    if not p.is_file():
        raise ModelLoadError("does not exist", path)
    return str(p)


def diff_models(a: str | os.PathLike, b: str | os.PathLike, options: DiffOptions | None = None, *,
                data: DiffSamples | None = None, report: Report = ignore,
                cancel: CancelToken | None = None) -> ModelDiff:
    """`data`: samples already prepared (a sweep's evaluation data); else options.data or random inputs."""
    pa, pb = model_file(a), model_file(b)
    return run_job(diff_job, pa, pb, options or DiffOptions(), data=data, report=report, cancel=cancel,
                   what=f"the diff of {pa} and {pb}", kind=backend_for_file(pa).kind)


def diff_job(a: str, b: str, options: DiffOptions, report: Report = ignore,
             data: DiffSamples | None = None) -> ModelDiff:
    """In a worker: the structural diff, then both models on the samples."""
    from studio.core.look import numeric

    ga, gb = read_graph(a), read_graph(b)
    pairs = match(ga, gb)
    b_quantized = any(n.quant for n in gb.nodes) and not any(n.quant for n in ga.nodes)
    ops = tuple(compare(na, nb, b_quantized) for na, nb in pairs)
    if not options.numeric:
        return ModelDiff(a, b, ops, (), (), 0, options.data is None)
    report(0.2, "running both models on the samples")
    data = data or _samples(a, options)
    samples = data.samples
    with tempfile.TemporaryDirectory(prefix="studio-diff-") as tmp:
        acts_a = numeric.activations(a, samples, Path(tmp))
        acts_b = numeric.activations(b, samples, Path(tmp))
    report(0.8, "comparing tensors")
    matched = [(na, nb) for na, nb in pairs if na is not None and nb is not None]
    found = numeric.pair(acts_a, acts_b, matched, b_quantized and gb.format == "onnx")
    errors = sorted((numeric.tensor_error(acts_a, acts_b, ta, tb, node) for ta, tb, node in found),
                    key=lambda e: (e.sqnr_db, e.a))  # ties (a Flatten of a pool) by name: the same order every run
    return ModelDiff(a, b, ops, tuple(errors), numeric.worst_samples(a, b, samples, data.y), len(samples),
                     data.synthetic, data.class_names)


def _samples(path: str, options: DiffOptions) -> DiffSamples:
    """The user's data fitted to A's inputs, else seeded random inputs at A's resolved shapes."""
    from studio.core.data.datasets import load_dataset
    from studio.core.data.feeding import fit
    from studio.core.measure.runtimes import open_runner
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import resolve

    declared = open_runner(path).declared
    if options.data is None:
        return DiffSamples(synthetic(resolve(declared, options.shapes, path=path), options.samples), synthetic=True)
    ds = load_dataset(options.data, limit=options.samples)
    samples = fit(ds, declared, options.shapes).samples
    y = ds.y[:len(samples)] if ds.classification and ds.y is not None and len(ds.y) >= len(samples) else None
    return DiffSamples(samples, y, tuple(ds.labels) if ds.labels else None)
