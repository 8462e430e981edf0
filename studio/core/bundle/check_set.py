"""The check set every bundle carries for the monitor: N inputs at the resolved shapes (from the user's data, else
synthetic), the source model's outputs on them, and the promise: the fidelity and latency measured at export."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.base.errors import StudioError
from studio.core.tensors.shapes import ShapeRequest

if TYPE_CHECKING:  # numpy is imported where a check set is made: verifying a bundle (the flasher) does without it
    import numpy as np

CHECKS = "checks.npz"
DEFAULT_COUNT = 32
HOST_RUNS = 30  # timed runs of the promise's host latency


@dataclass(frozen=True, eq=False)
class CheckSet:
    runs: tuple[tuple[np.ndarray, ...], ...]  # per sample: one run's feeds in the bundle model's input dtypes
    expected: tuple[np.ndarray, ...]  # per tensor output: the expected float values, one row per sample
    source: str  # "data" or "synthetic"
    expected_by: str  # "source model", or "bundle model" when the source cannot run here
    promise: dict[str, Any]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"s{i:03d}_input{k:03d}": a for i, feeds in enumerate(self.runs) for k, a in enumerate(feeds)}
        out.update({f"expected{k:03d}": e for k, e in enumerate(self.expected)})
        return out

    def manifest_entry(self) -> dict[str, Any]:
        return {"file": CHECKS, "count": len(self.runs), "source": self.source, "expected_by": self.expected_by,
                "expected": len(self.expected)}


def make_check_set(model: Path, dataset: str | os.PathLike | None, shapes: ShapeRequest, preprocess, *,
                   count: int = DEFAULT_COUNT, source_model: Path | None = None,
                   device_latency_ms: float | None = None) -> CheckSet:
    """`count` samples of `dataset` (fitted as the recipe says), else synthetic ones at the resolved shapes; the
    expected outputs come from `source_model` when it is an ONNX/TFLite file that takes the same inputs."""
    from studio.core.bundle.sample import _renamed
    from studio.core.data.datasets import load_dataset
    from studio.core.data.feeding import fit
    from studio.core.measure.fidelity import per_output
    from studio.core.measure.runtimes import open_runner
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import resolve

    if count < 1:
        raise StudioError(f"--check-samples {count}: a check set needs at least one sample")
    runner = open_runner(str(model))
    shapes = _renamed(shapes, [t.name for t in runner.declared])
    if dataset:
        samples = fit(load_dataset(dataset, limit=count, resize=preprocess.resize), runner.declared, shapes,
                      preprocess, count).samples
        source = "data"
    else:
        samples, source = synthetic(resolve(runner.declared, shapes, path=str(model)), count), "synthetic"
    runs = feeds_for(runner, samples)
    got = outputs_of(runner, runs)
    expected, expected_by = got, "bundle model"
    if source_model is not None and source_model.suffix.lower() in (".onnx", ".tflite") and source_model.is_file():
        try:
            theirs = outputs_of(src := open_runner(str(source_model)), feeds_for(src, samples))
        except (StudioError, ValueError, RuntimeError):
            theirs = ()
        if len(theirs) == len(got) and all(t.size == g.size for t, g in zip(theirs, got, strict=True)):
            expected, expected_by = tuple(t.reshape(g.shape) for t, g in zip(theirs, got, strict=True)), "source model"
    names = [o.name for o in runner.outputs][:len(got)]
    fidelity = [{"name": f.name, "cosine": f.cosine, "sqnr_db": f.sqnr_db, "max_abs": f.max_abs_error,
                 "agreement": f.top1_agreement} for f in per_output(expected, got, names)]
    promise = {**host_latency(runner, runs), "device_latency_ms_median": device_latency_ms, "fidelity": fidelity}
    return CheckSet(tuple(tuple(r) for r in runs), tuple(expected), source, expected_by, promise)


def feeds_for(runner, samples) -> list[list[np.ndarray]]:
    """One run per sample, each input encoded in the runner's dtype (quantized where the model takes integers)."""
    from studio.core.measure.runtimes import feed_order

    order = feed_order(runner, samples)
    return [[spec.encode(one[k]) for spec, k in zip(runner.inputs, order, strict=True)]
            for one in (samples.sample(i) for i in range(len(samples)))]


def outputs_of(runner, runs: Sequence[list[np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Every tensor output over all runs as float rows, as the device runner gathers them (runner.rows)."""
    import numpy as np

    from studio.core.measure.runtimes import as_array

    per_run = [[spec.decode(as_array(y)) for spec, y in zip(runner.outputs, runner.run(feeds), strict=True)]
               for feeds in runs]
    out = []
    for k in range(len(per_run[0])):
        ys = [r[k] for r in per_run]
        if ys[0].dtype == object:
            continue
        out.append(np.concatenate(ys) if all(y.ndim for y in ys) else np.stack(ys))
    return tuple(out)


def host_latency(runner, runs: Sequence[list[np.ndarray]]) -> dict[str, Any]:
    """The promise's latency: median and p90 over HOST_RUNS runs of the check set on this machine."""
    from studio.core.measure.runtimes import runtime_version

    for k in range(3):
        runner.run(runs[k % len(runs)])
    times = []
    for k in range(HOST_RUNS):
        start = time.perf_counter()
        runner.run(runs[k % len(runs)])
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return {"latency_ms_median": times[len(times) // 2], "latency_ms_p90": times[int(len(times) * 0.9)],
            "runs": HOST_RUNS, "threads": runner.threads, "runtime": runner.runtime,
            "runtime_version": runtime_version(runner.runtime),
            "host": platform.node() or None, "machine": platform.machine()}
