"""Measure, never estimate: accuracy and agreement on real data, and latency with the device's runtime.

Both run in a worker process (one model per process, so peak memory belongs to that model)."""
from __future__ import annotations

import resource

import numpy as np

from studio.core.base.pool import POOL
from studio.core.base.progress import ignore
from studio.core.base.versions import host
from studio.core.data.datasets import load_dataset
from studio.core.data.feeding import fit
from studio.core.measure.latency import LatencyOptions, timed_rounds
from studio.core.measure.runtimes import eval_threads, open_runner, predict, runtime_version, timing_feeds
from studio.core.measure.verify import compare
from studio.core.recipe.recipe import Preprocess
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import ShapeRequest


def topk_accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    scores = scores.reshape(len(scores), -1)
    if scores.shape[1] < k:
        return float("nan")
    if k == 1:  # argmax, like every other top-1 here: quantized outputs often tie, and ties must break the same way
        return float(np.mean(scores.argmax(1) == y) * 100)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == y[:, None], axis=1)) * 100)


def model_inputs(path: str, dataset: str, preprocess: Preprocess, limit: int | None = None,
                 shapes: ShapeRequest = ShapeRequest()):
    """(runner, samples, dataset) for evaluating `path` on `dataset` with the recipe's preprocessing."""
    runner = open_runner(path, eval_threads())
    ds = load_dataset(dataset, limit=limit, resize=preprocess.resize)
    return runner, fit(ds, runner.declared, shapes, preprocess, limit).samples, ds


def evaluate(path: str, dataset: str, preprocess: Preprocess = Preprocess(), reference: list | None = None,
             limit: int | None = None, shapes: ShapeRequest = ShapeRequest(), report=ignore) -> dict:
    """Top-1/top-5 accuracy (labelled classification), MSE (regression) and agreement with `reference` outputs."""
    runner, samples, ds = model_inputs(path, dataset, preprocess, limit, shapes)
    report(0.1, f"running {len(samples)} samples")
    outputs = predict(runner, samples)
    result: dict = {"samples": len(samples)}
    main = outputs[0]
    if ds.classification and ds.y is not None:
        result["top1"] = topk_accuracy(main, ds.y, 1)
        top5 = topk_accuracy(main, ds.y, 5)
        if top5 == top5:  # nan when there are fewer than 5 classes
            result["top5"] = top5
    elif ds.labelled and ds.y is not None:
        result["mse"] = float(np.mean((main.reshape(ds.y.shape) - ds.y.astype(np.float32)) ** 2))
    if reference is not None:
        result["agreement"] = compare(reference, outputs)
    result["outputs"] = outputs
    report(1.0, "evaluated")
    return result


def measure_latency(path: str, samples: Samples | None, options: LatencyOptions = LatencyOptions(),
                    report=ignore) -> dict:
    """Latency with the model's own runtime at the resolved input shapes (the first of `samples`; without samples,
    the model's static shapes): warm-up, then timed rounds (timed_rounds: median of the round medians, their
    spread, noisy); in ms."""
    if str(path).lower().endswith(".tflite"):  # the runtime's own import is not the model's memory
        import ai_edge_litert.interpreter  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
    baseline = _reset_peak_rss()
    runner = open_runner(path, threads=options.threads)
    feeds = timing_feeds(runner, samples)
    with POOL.quiet():  # timed here, in a process that warms workers: none starts meanwhile
        for _ in range(options.warmup):
            runner.run(feeds)
        timed = timed_rounds(lambda: runner.run(feeds), options, report)
    return {**timed, "warmup": options.warmup, "threads": options.threads,
            "batch": samples.inputs[0].batch_size if samples is not None and samples.inputs else 1,
            "input_shapes": {spec.name: list(np.shape(x)) for spec, x in zip(runner.inputs, feeds, strict=True)},
            "runtime": runner.runtime, "runtime_version": runtime_version(runner.runtime),
            "peak_rss_mb": _model_peak_mb(baseline), "host": host()}


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            line = next((x for x in fh if x.startswith(field + ":")), None)
    except OSError:
        return None
    return int(line.split()[1]) if line else None


def _reset_peak_rss() -> int | None:
    """Reset this process's peak RSS (Linux: clear_refs 5) and return its RSS now, in kB; None where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def _model_peak_mb(baseline: int | None) -> float:
    """The memory loading and running the model took at its peak: peak RSS since the reset, less what the process
    held before (the worker's own imports are not the model's). Without /proc: the process's peak RSS."""
    peak = _status_kb("VmHWM")
    if baseline is None or peak is None:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return round(max(0, peak - baseline) / 1024, 1)
