"""The trade-off sweep: many candidate recipes, measured for real, with a journal so no finished work is lost.

run_sweep opens the run folder (RunFolder: the layout), prepares the data once, hands typed tasks to the Scheduler
(one float stage per target and pruning ratio, then each candidate) and records every finished candidate with the
ResultsWriter (journal, results.json, results.csv, tradeoff.png).
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from studio.core.base import atomic
from studio.core.base.errors import Cancelled, RecipeError, StudioError
from studio.core.base.jobs import run_job
from studio.core.base.pool import WorkerKind
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.convert.result import ConvertResult
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.formats import Framework
from studio.core.inspect.modelinfo import ModelInfo
from studio.core.measure.evaluate import measure_latency
from studio.core.measure.fidelity import Scoring
from studio.core.measure.latency import LatencyOptions
from studio.core.optimize.optimize import finetune_data, has_module, inspect_source, is_quantized, source_data
from studio.core.optimize.stage import FloatStage, StageRequest, warm_ahead
from studio.core.quantize.backend import backend_for_file
from studio.core.recipe.grid import Candidate, Grid
from studio.core.recipe.recipe import PruneMethod, QuantMode, Recipe, check_source
from studio.core.sweep import eval_data
from studio.core.sweep.executor import ClusterOptions, Executor, ExecutorLost, LocalExecutor
from studio.core.sweep.jobs import CandidateJob, reference_job
from studio.core.sweep.records import CandidateResult, SensitivityReady, SweepEvent, SweepFinished
from studio.core.sweep.results import RESULTS_VERSION, ResultsContext, ResultsWriter, failed_row, measured_row
from studio.core.sweep.run_folder import RunFolder
from studio.core.sweep.scheduler import CandidateTask, GroupTask, MeasureGate, Scheduler, Task, group_tasks
from studio.core.tensors.samples import Samples, TrainingData
from studio.core.tensors.shapes import InputShape, ShapeRequest

DeviceBench = Callable[[Path, CandidateResult], dict]


class SweepError(StudioError):
    """A sweep cannot start or resume (for example, RUN holds a different sweep)."""


@dataclass(frozen=True)
class SweepOptions:
    workers: int = 2  # tasks at once; 0: as many as the cluster has CPUs (or 2 on this machine)
    budget_s: float | None = None
    max_drop: float | None = None  # accuracy points (or agreement points without labels)
    limit: int = 1000  # evaluation samples
    threads: int = 1  # runtime threads for latency
    latency_rounds: int = LatencyOptions.rounds  # latency is the median of this many rounds' medians
    sensitivity: bool = False
    arch: ArchSpec | None = None
    trust_pickle: bool = False
    shapes: ShapeRequest = ShapeRequest()  # --input-shape: what the user resolved
    scoring: Scoring = Scoring()  # --score-output, --metric, --min-fidelity
    trust_code: bool = False  # a --metric of the user's own may run
    finetune: str | None = None
    device: str | None = None
    cluster: ClusterOptions | None = None  # --cluster: candidates run as Ray tasks there

    def __post_init__(self):
        self.latency  # noqa: B018 - StudioError now, not after the first candidate, for threads or rounds below 1

    @property
    def latency(self) -> LatencyOptions:
        return LatencyOptions(threads=self.threads, rounds=self.latency_rounds)


@dataclass(frozen=True, eq=False)
class _Source:
    model: str
    info: ModelInfo


def run_sweep(model: str | os.PathLike, grid: Grid, data: str | None, out_dir: str | os.PathLike, *,
              options: SweepOptions = SweepOptions(), report: Report = ignore, cancel: CancelToken | None = None,
              on_event: Callable[[SweepEvent], None] | None = None,
              device_bench: DeviceBench | None = None) -> dict:
    """Evaluate every candidate of `grid` on `model`; resumes from RUN's journal. Returns the results document."""
    started = time.monotonic()
    run, cancel = RunFolder(out_dir), cancel or CancelToken()
    emit = on_event or (lambda event: None)
    if options.cluster is None:  # the candidates are built here
        warm_ahead(os.fspath(model), grid.targets)
    report(0.0, "inspecting the model")
    source = _inspect(os.fspath(model), options, data, cancel)
    config = _config(source, grid, data, options)
    candidates = grid.candidates()
    train = _finetune_train(source, grid, candidates, options)
    _claim(run, config)
    gate = MeasureGate()
    executor = _executor(options, run, gate, report)
    try:
        data_path, reference = _prepare_data(run, source, data, base=grid.base, options=options, cancel=cancel)
        executor.share(source.model, source.info.files, str(data_path))
        writer = ResultsWriter(run, ResultsContext(config, source.info.format, reference,
                                                   tuple(c.id for c in candidates), options.max_drop,
                                                   options.threads, started, executor.record()))
        pending = [c for c in candidates if c.id not in writer.results]
        if writer.results:
            report(0.02, f"resuming: {len(writer.results)} of {len(candidates)} candidates already finished")
        deadline = started + options.budget_s if options.budget_s else None
        sweep = _Sweep(source, run, data_path, writer, options=options, cancel=cancel, deadline=deadline, train=train,
                       device_bench=device_bench, progress=_Progress(report, len(pending), emit),
                       executor=executor, gate=gate)
        scheduler = Scheduler(sweep.handle, workers=options.workers or executor.slots, deadline=deadline,
                              cancel=cancel)
        try:
            scheduler.run(group_tasks(pending))
        except ExecutorLost:
            emit(SweepFinished(writer.write(interrupted=True, skipped=scheduler.skipped)))
            raise
        if options.sensitivity and not cancel.cancelled and not scheduler.out_of_time():
            emit(SensitivityReady(sweep.sensitivity(grid)))
    finally:
        executor.close()
    doc = writer.write(interrupted=cancel.cancelled, skipped=scheduler.skipped)
    writer.plot()
    emit(SweepFinished(doc))
    if cancel.cancelled:
        raise Cancelled(f"sweep interrupted after {len(writer.results)} of {len(candidates)} candidates; run it again"
                        f" with the same output folder to resume", run.root)
    report(1.0, f"{len(writer.results)} candidates, {len(doc['pareto'])} on the Pareto front")
    return doc


def _executor(options: SweepOptions, run: RunFolder, gate: MeasureGate, report: Report) -> Executor:
    """Worker processes here, or the Ray cluster of --cluster (its driver log in RUN/work/cluster.log)."""
    if options.cluster is None:
        return LocalExecutor(gate)
    from studio.core.sweep.cluster.client import ClusterExecutor

    report(0.01, f"connecting to the Ray cluster at {options.cluster.address}")
    return ClusterExecutor(options.cluster, run.work / "cluster.log", timing=options.latency)


def _inspect(model: str, options: SweepOptions, data: str | None, cancel: CancelToken) -> _Source:
    info = inspect_source(model, arch=options.arch, trust_pickle=options.trust_pickle, shapes=options.shapes,
                          data=data, cancel=cancel)
    info.require_runnable(SweepError, "cannot sweep a model its runtime refuses", model, runtimes_only=True)
    return _Source(model, info)


def _config(source: _Source, grid: Grid, data: str | None, options: SweepOptions) -> dict:
    """RUN/config.json's content, as JSON reads it back (tuples as lists), so that a resume compares like with like."""
    from studio.core.base.hashing import source_digest

    config = {"schema_version": RESULTS_VERSION, "model": os.path.abspath(source.model),
              "model_sha256": source_digest(source.info.files),
              "data": os.path.abspath(data) if data else None, "grid": grid.to_dict(),
              "options": _keyed_options(options)}
    return json.loads(json.dumps(config))  # as sweep.json reads back: tuples become lists


def _keyed_options(options: SweepOptions) -> dict[str, Any]:
    """The options that change results (workers, budget, device and sensitivity change none), as JSON values."""
    keyed = {k: v for k, v in asdict(options).items()
             if k not in ("workers", "budget_s", "device", "sensitivity", "shapes", "scoring", "trust_code", "cluster",
                          "latency_rounds")}
    keyed["arch"] = options.arch.record() if options.arch else None
    keyed["input_shape"] = options.shapes.texts() or None  # the key older run folders have
    if options.scoring != Scoring():  # older run folders have no scoring key: the default keeps them resumable
        keyed["scoring"] = asdict(options.scoring)
    if options.latency_rounds != LatencyOptions.rounds:  # likewise: older run folders have no latency_rounds key
        keyed["latency_rounds"] = options.latency_rounds
    return keyed


def _finetune_train(source: _Source, grid: Grid, candidates: list[Candidate],
                    options: SweepOptions) -> TrainingData | None:
    """Recovery fine-tuning data (loaded once, as `optimize` loads it) when a candidate prunes structurally with
    fine-tuning epochs; DataError when it carries no labels."""
    due = any(c.recipe.pruning.method == PruneMethod.STRUCTURED and c.recipe.pruning.finetune_epochs
              for c in candidates)
    return finetune_data(options.finetune, source.info, options.shapes, grid.base) if options.finetune and due else None


def _claim(run: RunFolder, config: dict) -> None:
    """Make RUN this sweep's folder, or refuse when it holds a different sweep."""
    run.mkdirs()
    if run.config.is_file():
        previous = json.loads(run.config.read_text(encoding="utf-8"))
        if previous != config:
            changed = [k for k in config if previous.get(k) != config[k]]
            raise SweepError(f"holds a different sweep ({', '.join(changed)} changed); use another -o folder to"
                             " start a new one", run.root)
    else:
        atomic.write_json(run.config, config)


def _prepare_data(run: RunFolder, source: _Source, data: str | None, *, base: Recipe, options: SweepOptions,
                  cancel: CancelToken) -> tuple[Path, dict[str, Any]]:
    """Evaluation inputs at the resolved shapes (calibration and verification take the first of them) and the
    original model's reference outputs, cached in RUN/work."""
    data_path, ref_file = run.work / "data.npz", run.work / "reference.json"
    if data_path.is_file() and ref_file.is_file() and eval_data.is_current(data_path):
        reference = json.loads(ref_file.read_text(encoding="utf-8"))
        if "inputs" in reference:
            return data_path, reference
    if data_path.is_file():  # prepared by an older Studio: its candidates were scored another way, so they run again
        run.journal.unlink(missing_ok=True)
    prepared = source_data(source.info, options.shapes, data, base, options.limit,
                           synthetic_count=min(options.limit, 200))
    ds, samples = prepared.dataset, prepared.samples
    y = ds.y if ds is not None and ds.classification else None
    eval_data.write(data_path, samples, y)
    ref = run_job(reference_job, source.model, source.info.framework, source.info.format, str(data_path),
                  samples.inputs, scoring=options.scoring, names=_output_names(source.info),
                  arch=options.arch, trust_pickle=options.trust_pickle, trust_code=options.trust_code, cancel=cancel,
                  what="the reference evaluation", kind=source.info.framework.worker_kind)
    eval_data.write(data_path, samples, y, ref["outputs"])
    reference = {k: v for k, v in ref.items() if k != "outputs"}
    reference.update(labelled=y is not None, samples=len(samples), synthetic=not data,
                     inputs=eval_data.inputs_to_json(samples.inputs), notes=list(prepared.notes))
    atomic.write_json(ref_file, reference)
    return data_path, reference


def _output_names(info: ModelInfo) -> tuple[str, ...]:
    return tuple(t.name for t in info.outputs)


def load_stage(path: Path) -> FloatStage | None:
    """A saved float stage; None when there is none or it is from an older Studio (then it is made again)."""
    if not path.is_file():
        return None
    try:
        stage = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - an older or damaged stage.pkl is simply recomputed
        return None
    fresh = isinstance(stage, FloatStage) and isinstance(stage.convert, ConvertResult)  # older: a dict record
    return stage if fresh else None


class _Progress:
    """Counts finished candidates for the progress report and forwards each to the listener (called under the
    sweep's recording lock)."""

    def __init__(self, report: Report, total: int, emit: Callable[[SweepEvent], None]):
        self._report, self._total, self.emit = report, max(1, total), emit
        self._done = 0

    def finished(self, row: CandidateResult) -> None:
        self._done += 1
        self._report(self._done / self._total, f"{row.id}: {row.status}")


class _Sweep:
    """The work of one sweep's tasks: a group's float stage, a candidate's finish, evaluation and timing."""

    def __init__(self, source: _Source, run: RunFolder, data_path: Path, writer: ResultsWriter, *,
                 options: SweepOptions, cancel: CancelToken, deadline: float | None,
                 train: TrainingData | None, device_bench: DeviceBench | None, progress: _Progress,
                 executor: Executor, gate: MeasureGate):
        self.source, self.run, self.data_path, self.writer = source, run, data_path, writer
        self.options, self.cancel, self.deadline, self.train = options, cancel, deadline, train
        self.device_bench, self.progress, self.executor, self.gate = device_bench, progress, executor, gate
        self._recording = threading.Lock()

    @property
    def inputs(self) -> tuple[InputShape, ...]:
        """The source's inputs at the shapes the data preparation resolved."""
        return eval_data.inputs_from_json(self.writer.context.reference["inputs"])

    def handle(self, task: Task) -> Iterable[Task]:
        if isinstance(task, GroupTask):
            return self._group(task)
        self._candidate(task)
        return ()

    def _record(self, row: CandidateResult) -> None:
        with self._recording:  # events leave in the order rows were written, so the last front is the latest
            event = self.writer.record(row)
            self.progress.finished(row)
            self.progress.emit(event)

    def _group(self, task: GroupTask) -> list[Task]:
        members = tuple(c for c in task.members if self._fits_source(c))
        if not members:
            return []
        try:
            stage = self._stage(members)
        except Cancelled:
            raise
        except StudioError as exc:
            for c in members:
                self._record(failed_row(c, exc.one_line()))
            return []
        return [CandidateTask(c, stage) for c in members]

    def _fits_source(self, c: Candidate) -> bool:
        """Whether the candidate's recipe can work on this source (as optimize checks it); records it failed with
        the reason if not: an already-quantized source is not quantized again, whatever its float stage does."""
        info = self.source.info
        try:
            check_source(c.recipe, info.format, has_module(info), is_quantized(info))
        except RecipeError as exc:
            self._record(failed_row(c, exc.one_line()))
            return False
        return True

    def _stage(self, members: tuple[Candidate, ...]) -> FloatStage:
        """One float conversion per (target, pruning ratio), shared by all quantization modes and kept for
        resumes."""
        recipe, folder = members[0].recipe, self.run.stage(*members[0].group)
        saved = folder / "stage.pkl"
        modes = tuple(sorted({c.recipe.quantization.mode for c in members}))
        stage = load_stage(saved)
        if stage is not None and stage.serves(modes):
            return stage
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        opts = self.options
        data = eval_data.read(self.data_path, self.inputs)
        verify_x, calib_x = data.verify(), data.calib(recipe.quantization.calib_samples)
        due = recipe.pruning.method == PruneMethod.STRUCTURED and recipe.pruning.finetune_epochs
        train = self.train if due else None
        request = StageRequest(model=self.source.model, info=self.source.info, recipe=recipe, inputs=self.inputs,
                               verify_x=verify_x, calib_x=calib_x, work=folder, train=train, arch=opts.arch,
                               trust_pickle=opts.trust_pickle, quant_modes=modes)
        stage = self.executor.stage(request, self.cancel).summary()
        atomic.write_bytes(saved, pickle.dumps(stage))
        return stage

    def _candidate(self, task: CandidateTask) -> None:
        c = task.candidate
        cdir, name = self.run.candidate(c.id), f"model.{c.recipe.target}"
        shutil.rmtree(cdir, ignore_errors=True)
        cdir.mkdir(parents=True)
        job = CandidateJob(task.stage, self.source.info.framework, c.recipe, str(self.data_path), self.inputs,
                           str(cdir / name), scoring=self.options.scoring,
                           output_names=_output_names(self.source.info), trust_code=self.options.trust_code,
                           ref_score=self.writer.context.reference_score, max_drop=self.options.max_drop,
                           deadline=self.deadline, sharing=self.options.workers or self.executor.slots)
        try:
            built = self.executor.candidate(job, self.run.stage(*c.group), self.cancel, f"candidate {c.id}")
            for stray in cdir.iterdir():  # keep the model and its record, drop the finishing scratch files
                if stray.name != name:
                    stray.unlink()
            got, latency = built.outcome, built.latency or self._measure(cdir / name, c)
        except (Cancelled, ExecutorLost):
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        except StudioError as exc:
            shutil.rmtree(cdir, ignore_errors=True)
            self._record(failed_row(c, exc.one_line()))
            return
        row = measured_row(c, got, latency, labelled=self.writer.context.labelled,
                           path=f"{cdir.relative_to(self.run.root)}/{name}", built_on=built.node)
        row = self._bench_on_device(cdir / name, row)
        atomic.write_json(self.run.candidate_meta(c.id), self.writer.candidate_meta(row))
        self._record(row)

    def _measure(self, model: Path, c: Candidate) -> dict[str, Any]:
        """The candidate's latency on this machine, measured alone (the measure gate)."""
        with self.gate.measure():
            return run_job(measure_latency, str(model), self._timing_samples(), self.options.latency,
                           cancel=self.cancel, what=f"latency of {c.id}")

    def _timing_samples(self) -> Samples:
        """The first samples at the resolved shapes: what every candidate is timed on."""
        return eval_data.read(self.data_path, self.inputs).samples.head(1)

    def _bench_on_device(self, model: Path, row: CandidateResult) -> CandidateResult:
        if self.device_bench is None:
            return row
        try:
            device = self.device_bench(model, row)
        except StudioError as exc:
            return replace(row, device={"error": exc.one_line()})
        return replace(row, device=device, device_latency_ms_median=device["median_ms"])

    def sensitivity(self, grid: Grid) -> dict[str, Any]:
        """Per-layer sensitivity for the grid's quantization (int8) and structured pruning; RUN/sensitivity.json."""
        from studio.core.sweep.sensitivity import prune_sensitivity, quant_sensitivity

        out: dict[str, Any] = {}
        data = eval_data.read(self.data_path, self.inputs)
        y = data.y
        stage = self._unpruned_stage(grid) if QuantMode.INT8 in grid.quant else None
        if isinstance(stage, str):
            out["notes"] = [f"no quantization sensitivity: {stage}"]
        elif stage is not None:
            out["quantization"] = run_job(quant_sensitivity, stage.float_path, grid.base.quantization,
                                          data.calib(grid.base.quantization.calib_samples), data.samples, y,
                                          cancel=self.cancel, what="quantization sensitivity",
                                          kind=backend_for_file(stage.float_path).kind)
        info, opts = self.source.info, self.options
        if self.writer.context.labelled and info.framework == Framework.PYTORCH and grid.uses_structured_pruning:
            out["pruning"] = run_job(prune_sensitivity, self.source.model, info.format, max(grid.prune),
                                     data.samples, y, arch=opts.arch, trust_pickle=opts.trust_pickle,
                                     cancel=self.cancel, what="pruning sensitivity", kind=WorkerKind.TORCH)
        atomic.write_json(self.run.sensitivity, out)
        return out

    def _unpruned_stage(self, grid: Grid) -> FloatStage | str:
        """The first target's unpruned float stage (made again when it is missing or from an older Studio), or why
        there is none."""
        members = tuple(c for c in grid.candidates() if c.group == (grid.targets[0], 0.0))
        if not members:
            return f"the grid has no unpruned {grid.targets[0]} candidate"
        try:
            return self._stage(members)
        except Cancelled:
            raise
        except StudioError as exc:
            return exc.one_line()
