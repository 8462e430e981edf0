"""`studio profile MODEL`: where the time of one run goes, per operator type and per node, from the runtime's own
profiler at the shapes the model is timed at (onnxruntime's for ONNX, LiteRT's for TFLite); and which nodes ran
outside the first execution provider (ONNX) or outside the XNNPACK delegate (TFLite)."""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base.errors import ModelLoadError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.bundle.bundle import ExportSource, bundle_sample, resolve_source
from studio.core.look.litert_summary import BUILTIN, DELEGATE, kernel_runs
from studio.core.look.ort_trace import KernelRun, ProfileError, read_trace
from studio.core.measure.runtimes import OnnxRunner, TfliteRunner, ort_options, runtime_version, timing_feeds
from studio.core.sweep import eval_data
from studio.core.sweep.run_folder import RunFolder
from studio.core.tensors.shapes import ShapeRequest


@dataclass(frozen=True)
class ProfileOptions:
    runs: int = 20  # timed runs, after the warm-up
    warmup: int = 5
    top: int = 20  # nodes listed, slowest first
    threads: int = 1
    data: str | None = None  # the first sample of it is fed; without it, seeded random inputs
    shapes: ShapeRequest = field(default_factory=ShapeRequest)  # else the shapes the model's run recorded
    providers: tuple[str, ...] = ("CPUExecutionProvider",)  # in priority order, as onnxruntime takes them
    optimized: bool = True  # onnxruntime's graph optimizations, as latency runs it; False: the graph as written

    def __post_init__(self):
        for name in ("runs", "top", "threads"):
            if getattr(self, name) < 1:
                raise ProfileError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.warmup < 0:
            raise ProfileError(f"warm-up runs cannot be negative ({self.warmup})")
        if not self.providers:
            raise ProfileError("name at least one execution provider")


@dataclass(frozen=True)
class OpTypeTime:
    op: str
    nodes: int
    ms: float  # per run
    share: float  # of the operators' time per run


@dataclass(frozen=True)
class NodeTime:
    name: str  # as onnxruntime ran it: a fused node carries the name onnxruntime gave it
    op: str
    provider: str
    ms: float  # per run
    share: float


@dataclass(frozen=True)
class Ran:
    """What one profiled session ran, wherever it ran: the facts a report states beside the operators' times."""
    model: str
    runtime: str
    providers: tuple[str, ...]  # the session's, in priority order
    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    synthetic: bool
    times: tuple[float, ...]  # wall ms of each timed run
    device: str | None = None


@dataclass(frozen=True)
class ProfileReport:
    model: str
    runtime: str  # "onnxruntime 1.31.1"
    providers: tuple[str, ...]  # the session's, in priority order
    optimized: bool
    inputs: tuple[tuple[str, tuple[int, ...]], ...]  # the shapes it ran at
    synthetic: bool  # random inputs: no data given
    runs: int
    warmup: int
    threads: int
    op_ms: float  # the operators' kernel time per run, summed
    latency_ms: float  # the measured wall time per run (mean of the timed runs)
    latency_median_ms: float
    node_count: int
    op_types: tuple[OpTypeTime, ...]  # slowest first
    nodes: tuple[NodeTime, ...]  # the `top` slowest
    fallback: tuple[NodeTime, ...]  # every node that ran on a provider other than the first, slowest first
    device: str | None = None  # the inventory name of the device it ran on; None: this machine

    @property
    def coverage(self) -> float:
        """The operators' share of the measured latency (the rest is the session's own overhead)."""
        return self.op_ms / self.latency_ms if self.latency_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["inputs"] = [{"name": n, "shape": list(s)} for n, s in self.inputs]
        doc["coverage"] = self.coverage
        return doc


def profile_model(path: str | os.PathLike, options: ProfileOptions | None = None, *, report: Report = ignore,
                  cancel: CancelToken | None = None) -> ProfileReport:
    """Profile a model file or a sweep candidate (RUN/ID) in a worker process."""
    src = resolve_source(path)
    model = str(src.model)
    candidate = RunFolder.of_candidate(path)
    options = options or ProfileOptions()
    if model.lower().endswith(".tflite"):
        refuse_onnx_options(options, model)
        job = profile_tflite_job
    elif model.lower().endswith(".onnx"):
        job = profile_job
    else:
        raise ModelLoadError("is neither .onnx nor .tflite: profile reads ONNX and TFLite models", model)
    return run_job(job, src, candidate[0] if candidate else None, options, report=report, cancel=cancel,
                   what=f"the profile of {model}")


def refuse_onnx_options(options: ProfileOptions, where: str) -> None:
    """Refuse the ONNX-only options for a TFLite model (`where`, in the error) rather than ignore them."""
    if options.providers != ProfileOptions().providers:
        raise ProfileError("execution providers are onnxruntime's: a TFLite model runs on LiteRT's CPU"
                           " accelerator (XNNPACK)", where)
    if not options.optimized:
        raise ProfileError("--no-graph-optimizations is onnxruntime's: LiteRT runs a TFLite graph as written",
                           where)


def profile_job(src: ExportSource, run: RunFolder | None, options: ProfileOptions,
                report: Report = ignore) -> ProfileReport:
    """In a worker: one run's inputs, warm-up, then timed runs with onnxruntime's profiler on."""
    import onnxruntime as ort

    missing = [p for p in options.providers if p not in ort.get_available_providers()]
    if missing:
        raise ProfileError(f"execution provider {', '.join(missing)} is not in onnxruntime"
                           f" {runtime_version('onnxruntime')} here (available:"
                           f" {', '.join(ort.get_available_providers())})")
    with tempfile.TemporaryDirectory(prefix="studio-profile-") as tmp:
        opts = ort_options(options.threads)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        if not options.optimized:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        runner = OnnxRunner(str(src.model), options.threads, opts, options.providers)
        feeds, synthetic = _feeds(src, run, options, runner)
        report(0.1, "warming up")
        for _ in range(options.warmup):
            runner.run(feeds)
        times = _timed(runner, feeds, options.runs, report)
        per_run = read_trace(Path(runner.session.end_profiling()), options.runs)
    shapes = tuple((i.name, tuple(np.shape(x))) for i, x in zip(runner.inputs, feeds, strict=True))
    ran = Ran(str(src.model), f"onnxruntime {runtime_version('onnxruntime')}",
              tuple(runner.session.get_providers()), shapes, synthetic, tuple(times))
    return build_report(ran, per_run, options)


def profile_tflite_job(src: ExportSource, run: RunFolder | None, options: ProfileOptions,
                       report: Report = ignore) -> ProfileReport:
    """In a worker: LiteRT's op profiler on one run's inputs (see bundle/litert_profiler.py)."""
    from studio.core.bundle.litert_profiler import LiteRtError, profile

    runner = TfliteRunner(str(src.model), options.threads)
    feeds, synthetic = _feeds(src, run, options, runner)
    report(0.1, "profiling with LiteRT")
    try:
        doc = profile(src.model, {i.name: x for i, x in zip(runner.inputs, feeds, strict=True)}, options.runs,
                      options.warmup, options.threads)
    except LiteRtError as exc:
        raise ProfileError(f"LiteRT's profiler cannot run this model ({exc})", src.model) from None
    doc["runtime_version"] = runtime_version("ai-edge-litert")
    return tflite_report(doc, str(src.model), synthetic, options)


def tflite_report(doc: dict[str, Any], model: str, synthetic: bool, options: ProfileOptions,
                  device: str | None = None) -> ProfileReport:
    """The report of LiteRT's profile (`doc` as litert_profiler.profile returns it, here or from a device)."""
    ran = Ran(model, f"ai-edge-litert {doc['runtime_version']}", (DELEGATE, BUILTIN),
              tuple((str(n), tuple(int(d) for d in shape)) for n, shape in doc["inputs"]), synthetic,
              tuple(float(t) for t in doc["times_ms"]), device)
    return build_report(ran, kernel_runs(doc["summary"], options.runs, doc["names"], model), options)


def build_report(ran: Ran, per_run: list[list[KernelRun]], options: ProfileOptions) -> ProfileReport:
    """The report of a profiled session from its timed runs' kernel times."""
    op_types, nodes = _aggregate(per_run)
    fallback = tuple(n for n in nodes if len(ran.providers) > 1 and n.provider != ran.providers[0])
    return ProfileReport(ran.model, ran.runtime, ran.providers, options.optimized, ran.inputs, ran.synthetic,
                         options.runs, options.warmup, options.threads, sum(n.ms for n in nodes),
                         statistics.fmean(ran.times), statistics.median(ran.times), len(nodes), op_types,
                         nodes[:options.top], fallback, ran.device)


def _feeds(src: ExportSource, run: RunFolder | None, options: ProfileOptions,
           runner: OnnxRunner | TfliteRunner) -> tuple[list[np.ndarray], bool]:
    """One run's inputs and whether they are random: for a sweep candidate, the sample its latency was timed on;
    else the first sample of the data (or random inputs) at the resolved shapes."""
    if run is not None and options.data is None and not options.shapes and (run.work / "data.npz").is_file():
        try:
            reference = json.loads((run.work / "reference.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProfileError(f"cannot be read ({exc.__class__.__name__}): run the sweep again",
                               run.work / "reference.json") from None
        inputs = eval_data.inputs_from_json(reference["inputs"])
        samples = eval_data.read(run.work / "data.npz", inputs).samples.head(1)
        return timing_feeds(runner, samples), bool(reference.get("synthetic"))
    sample = bundle_sample(src, options.data, options.shapes)
    return list(sample.inputs), sample.source == "synthetic"


def _timed(runner: OnnxRunner, feeds: list[np.ndarray], runs: int, report: Report) -> list[float]:
    """Wall time of each run in ms."""
    times = []
    for k in range(runs):
        start = time.perf_counter()
        runner.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
        report(0.1 + 0.8 * (k + 1) / runs, "profiling")
    return times


def _aggregate(per_run: list[list[KernelRun]]) -> tuple[tuple[OpTypeTime, ...], tuple[NodeTime, ...]]:
    """Per-run means per node and per op type, slowest first."""
    us: dict[tuple[str, str, str], int] = defaultdict(int)
    for run in per_run:
        for k in run:
            us[(k.node, k.op, k.provider)] += k.us
    total = sum(us.values()) or 1
    nodes = sorted((NodeTime(name, op, provider, t / len(per_run) / 1000, t / total)
                    for (name, op, provider), t in us.items()), key=lambda n: (-n.ms, n.name))
    by_op: dict[str, list[NodeTime]] = defaultdict(list)
    for n in nodes:
        by_op[n.op].append(n)
    op_types = sorted((OpTypeTime(op, len(ns), sum(n.ms for n in ns), sum(n.share for n in ns))
                       for op, ns in by_op.items()), key=lambda o: (-o.ms, o.op))
    return tuple(op_types), tuple(nodes)
