"""The trade-off sweep: many candidate recipes, measured for real, with a journal so no finished work is lost.

    RUN/sweep.json         what this sweep is (model, data, grid, options); a re-run must match it to resume
    RUN/journal.jsonl      one line per finished candidate, appended and fsynced as each one finishes
    RUN/results.json|csv   all candidates with Pareto flags, rewritten atomically after each one
    RUN/tradeoff.png       accuracy vs latency, size as marker size, the Pareto front highlighted
    RUN/candidates/ID/     model.onnx|model.tflite and candidate.json, for `studio export RUN/ID`
    RUN/work/              shared float conversions (one per target and pruning ratio) and prepared data
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from studio.core.base import atomic
from studio.core.base.errors import Cancelled, StudioError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.base.versions import host, library_versions
from studio.core.data.datasets import load_dataset, prepare, synthetic
from studio.core.inspect.inspector import inspect_model
from studio.core.measure.evaluate import measure_latency
from studio.core.optimize.optimize import float_stage, has_module, input_shape_of, is_quantized
from studio.core.recipe.grid import Candidate, Grid
from studio.core.recipe.recipe import PruneMethod, QuantMode, check_source
from studio.core.sweep.jobs import candidate_job, reference_job
from studio.core.sweep.pareto import best, pareto_ids

RESULTS_VERSION = 1
CSV_FIELDS = ["id", "target", "quant", "prune", "prune_ratio", "status", "accuracy", "top5", "agreement",
              "latency_ms_median", "latency_ms_p90", "device_latency_ms_median", "size_bytes", "pareto",
              "float_layers", "error"]


class SweepError(StudioError):
    """A sweep cannot start or resume (for example, RUN holds a different sweep)."""


@dataclass(frozen=True)
class SweepOptions:
    workers: int = 2
    budget_s: float | None = None
    max_drop: float | None = None  # accuracy points (or agreement points without labels)
    limit: int = 1000  # evaluation samples
    threads: int = 1  # runtime threads for latency
    sensitivity: bool = False
    arch: str | None = None
    trust_pickle: bool = False
    input_shape: tuple[int, ...] | None = None
    finetune: str | None = None
    device: str | None = None


class _MeasureGate:
    """Latency is measured alone: a measurement waits for running conversions and holds new ones back."""

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = 0
        self._measuring = False

    @contextmanager
    def work(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._measuring)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextmanager
    def measure(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._measuring)
            self._measuring = True
            self._cond.wait_for(lambda: self._busy == 0)
        try:
            yield
        finally:
            with self._cond:
                self._measuring = False
                self._cond.notify_all()


@dataclass
class _State:
    results: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _config(model: str, info, grid: Grid, data: str, options: SweepOptions) -> dict:
    from studio.core.base.hashing import source_digest

    return {"schema_version": RESULTS_VERSION, "model": os.path.abspath(model),
            "model_sha256": source_digest(info.files),
            "data": os.path.abspath(data) if data else None, "grid": grid.to_dict(),
            "options": {k: v for k, v in asdict(options).items()
                        if k not in ("workers", "budget_s", "device", "sensitivity")}}  # these change no result


def read_journal(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                done[row["id"]] = row
            except (ValueError, KeyError):
                continue  # a line cut short by a crash: that candidate simply runs again
    return done


def run_sweep(model: str | os.PathLike, grid: Grid, data: str | None, out_dir: str | os.PathLike, *,
              options: SweepOptions = SweepOptions(), report: Report = ignore, cancel: CancelToken | None = None,
              on_event: Callable[[dict], None] | None = None,
              device_bench: Callable[[Path, dict], dict] | None = None) -> dict:
    """Evaluate every candidate of `grid` on `model`; resumes from RUN's journal. Returns the results document."""
    started = time.monotonic()
    model, run = os.fspath(model), Path(out_dir)
    cancel = cancel or CancelToken()
    emit = on_event or (lambda event: None)
    report(0.0, "inspecting the model")
    info = inspect_model(model, arch=options.arch, trust_pickle=options.trust_pickle, input_shape=options.input_shape,
                         cancel=cancel)
    info.require_runnable(SweepError, "cannot sweep a model its runtime refuses", model, runtimes_only=True)
    shape = input_shape_of(info, options.input_shape)
    config = _config(model, info, grid, data, options)
    run.mkdir(parents=True, exist_ok=True)
    (run / "candidates").mkdir(exist_ok=True)
    work = run / "work"
    work.mkdir(exist_ok=True)
    if (run / "sweep.json").is_file():
        previous = json.loads((run / "sweep.json").read_text(encoding="utf-8"))
        if previous != config:
            changed = [k for k in config if previous.get(k) != config[k]]
            raise SweepError(f"holds a different sweep ({', '.join(changed)} changed); use another -o folder to"
                             " start a new one", run)
    else:
        atomic.write_json(run / "sweep.json", config)
    journal = run / "journal.jsonl"
    state = _State(results=read_journal(journal))
    candidates = grid.candidates()
    pending = [c for c in candidates if c.id not in state.results]
    if state.results:
        report(0.02, f"resuming: {len(state.results)} of {len(candidates)} candidates already finished")

    data_path, labelled, reference = _prepare_data(run, work, model, info, data, shape, grid, options, cancel)
    ref_score = reference.get("accuracy") if labelled else 100.0
    deadline = started + options.budget_s if options.budget_s else None
    gate = _MeasureGate()
    total = max(1, len(pending))
    finished = [0]

    def record(candidate: Candidate, row: dict) -> None:
        with state.lock:
            state.results[candidate.id] = row
            with open(journal, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(atomic.json_safe(row)) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            doc = _write_results(run, config, info, state.results, candidates, reference, labelled, options,
                                 started, interrupted=False)
            finished[0] += 1
        report(finished[0] / total, f"{candidate.id}: {row['status']}")
        emit({"type": "candidate", "candidate": _public(row, doc)})
        emit({"type": "pareto", "ids": doc["pareto"], "best": doc["best"]})

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    groups: dict[tuple, list[Candidate]] = {}
    for c in pending:
        groups.setdefault(c.group, []).append(c)
    tasks: list = [("group", key, members) for key, members in groups.items()]
    queue_lock = threading.Condition()
    running = [0]
    skipped: list[str] = []

    def process_group(key, members):
        recipe = members[0].recipe
        try:
            check_source(recipe, info.format, has_module(info), is_quantized(info))
            stage = _group_stage(work, key, model, info, recipe, shape, data_path, members, options, gate, cancel)
        except Cancelled:
            raise
        except StudioError as exc:
            for c in members:
                record(c, _row(c, "failed", error=exc.one_line()))
            return
        with queue_lock:
            tasks.extend(("candidate", c, stage) for c in members)
            queue_lock.notify_all()

    def process_candidate(c: Candidate, stage: dict):
        cdir = run / "candidates" / c.id
        shutil.rmtree(cdir, ignore_errors=True)
        cdir.mkdir(parents=True)
        name = f"model.{c.recipe.target.value}"
        try:
            with gate.work():
                got = run_job(candidate_job, stage, info.framework, c.recipe, str(data_path), str(cdir / name),
                              ref_score, options.max_drop, deadline, cancel=cancel, what=f"candidate {c.id}")
            for stray in cdir.iterdir():  # keep the model and its record, drop the finishing scratch files
                if stray.name != name:
                    stray.unlink()
            with gate.measure():
                latency = run_job(measure_latency, str(cdir / name), options.threads, cancel=cancel,
                                  what=f"latency of {c.id}")
        except Cancelled:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        except StudioError as exc:
            shutil.rmtree(cdir, ignore_errors=True)
            record(c, _row(c, "failed", error=exc.one_line()))
            return
        row = _row(c, "ok", got=got, latency=latency, labelled=labelled, path=f"candidates/{c.id}/{name}")
        if device_bench is not None:
            try:
                row["device"] = device_bench(cdir / name, row)
                row["device_latency_ms_median"] = row["device"]["median_ms"]
            except StudioError as exc:
                row["device"] = {"error": exc.one_line()}
        atomic.write_json(cdir / "candidate.json", _candidate_meta(row, config, info))
        record(c, row)

    errors: list[BaseException] = []

    def worker():
        while True:
            with queue_lock:
                queue_lock.wait_for(lambda: tasks or running[0] == 0 or cancel.cancelled or errors)
                if cancel.cancelled or errors or (not tasks and running[0] == 0):
                    queue_lock.notify_all()
                    return
                task = tasks.pop(0)
                if out_of_time():
                    skipped.extend([c.id for c in task[2]] if task[0] == "group" else [task[1].id])
                    queue_lock.notify_all()
                    continue
                running[0] += 1
            try:
                if task[0] == "group":
                    process_group(task[1], task[2])
                else:
                    process_candidate(task[1], task[2])
            except Cancelled:
                cancel.cancel()
            except BaseException as exc:  # noqa: BLE001 - surfaced after the other workers stop
                errors.append(exc)
            finally:
                with queue_lock:
                    running[0] -= 1
                    queue_lock.notify_all()

    threads = [threading.Thread(target=worker, daemon=True, name=f"sweep-{i}") for i in range(max(1, options.workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if options.sensitivity and not cancel.cancelled and not out_of_time():
        _sensitivity(run, work, model, info, grid, data_path, labelled, options, cancel, emit)
    doc = _write_results(run, config, info, state.results, candidates, reference, labelled, options, started,
                         interrupted=cancel.cancelled, skipped=skipped)
    from studio.core.sweep.plot import plot_tradeoff

    plot_tradeoff(doc, run / "tradeoff.png")
    if cancel.cancelled:
        raise Cancelled(f"sweep interrupted after {len(state.results)} of {len(candidates)} candidates; run it again"
                        f" with the same output folder to resume", run)
    report(1.0, f"{len(state.results)} candidates, {len(doc['pareto'])} on the Pareto front")
    return doc


def _prepare_data(run, work, model, info, data, shape, grid, options, cancel):
    """Prepared evaluation / calibration inputs and the original model's reference outputs (cached in RUN/work)."""
    data_path = work / "data.npz"
    ref_file = work / "reference.json"
    if data_path.is_file() and ref_file.is_file():
        reference = json.loads(ref_file.read_text(encoding="utf-8"))
        return data_path, reference["labelled"], reference
    base = grid.base
    if data:
        ds = load_dataset(data, limit=options.limit, resize=base.preprocess.resize)
        x = prepare(ds.x, shape, base.preprocess, data)
        y = ds.y if ds.classification else None
    else:
        x, y = synthetic(shape, min(options.limit, 200)), None
    calib = x[:base.quantization.calib_samples]
    arrays = {"eval_x": x, "eval_y": y if y is not None else np.zeros(0, np.int64), "calib_x": calib,
              "verify_x": x[:16]}
    atomic.write_bytes(data_path, _npz(arrays))
    ref = run_job(reference_job, model, info.framework, info.format, options.arch, options.trust_pickle,
                  str(data_path), cancel=cancel, what="the reference evaluation")
    for i, out in enumerate(ref["outputs"]):
        arrays[f"ref_out{i:03d}"] = out
    atomic.write_bytes(data_path, _npz(arrays))
    reference = {k: v for k, v in ref.items() if k != "outputs"}
    reference.update(labelled=y is not None, samples=len(x), synthetic=not data)
    atomic.write_json(ref_file, reference)
    return data_path, y is not None, reference


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _group_stage(work: Path, key, model, info, recipe, shape, data_path, members, options, gate, cancel) -> dict:
    """One float conversion per (target, pruning ratio), shared by all quantization modes and kept for resumes."""
    folder = work / f"{key[0]}-p{key[1]:.2f}"
    saved = folder / "stage.pkl"
    modes = sorted({c.recipe.quantization.mode.value for c in members})
    if saved.is_file():
        stage = pickle.loads(saved.read_bytes())
        if set(modes) <= set(stage.get("modes", [])) and Path(stage["float"]).exists():
            return stage
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with np.load(data_path) as arrays:
        verify_x, calib_x = arrays["verify_x"], arrays["calib_x"]
        train = None
        if options.finetune and recipe.pruning.method == PruneMethod.STRUCTURED and recipe.pruning.finetune_epochs:
            ds = load_dataset(options.finetune, resize=recipe.preprocess.resize)
            train = (prepare(ds.x, shape, recipe.preprocess, options.finetune), ds.y)
    with gate.work():
        stage = float_stage(model, info, recipe, shape, verify_x, calib_x, train, folder, options.arch,
                            options.trust_pickle, cancel=cancel, quant_modes=modes)
    stage = {k: v for k, v in stage.items() if k != "first"} | {"modes": modes,
                                                                "first_steps": stage["first"].get("steps", [])}
    atomic.write_bytes(saved, pickle.dumps(stage))
    return stage


def _row(c: Candidate, status: str, got: dict | None = None, latency: dict | None = None, labelled: bool = False,
         path: str | None = None, error: str | None = None) -> dict:
    r = c.recipe
    row = {"id": c.id, "target": r.target.value, "quant": r.quantization.mode.value, "prune": r.pruning.method.value,
           "prune_ratio": r.pruning.ratio, "status": status, "accuracy": None, "top5": None, "agreement": None,
           "cosine": None, "sqnr_db": None, "latency_ms_median": None, "latency_ms_p90": None, "size_bytes": None,
           "pareto": False, "error": error, "recipe": r.to_dict(), "path": path, "float_layers": [],
           "device_latency_ms_median": None}
    if got:
        s = got["scores"]
        row.update(accuracy=s.get("accuracy") if labelled else None, agreement=s.get("top1_agreement"),
                   cosine=s.get("cosine"), sqnr_db=s.get("sqnr_db"), size_bytes=got["size_bytes"],
                   float_layers=got.get("float_layers", []), seconds=got["seconds"], notes=got["notes"])
        if row["agreement"] is None and s.get("cosine") is not None:
            row["agreement"] = s["cosine"] * 100
        if got.get("bound_met") is not None:
            row["bound_met"] = got["bound_met"]
    if latency:
        row.update(latency_ms_median=latency["median_ms"], latency_ms_p90=latency["p90_ms"],
                   peak_rss_mb=latency["peak_rss_mb"], runtime=latency["runtime"],
                   runtime_version=latency["runtime_version"], threads=latency["threads"], runs=latency["runs"])
    return row


def _public(row: dict, doc: dict) -> dict:
    return next((c for c in doc["candidates"] if c["id"] == row["id"]), row)


def _candidate_meta(row: dict, config: dict, info) -> dict:
    return {"id": row["id"], "recipe": row["recipe"],
            "source": {"path": config["model"], "sha256": config["model_sha256"], "format": info.format},
            "metrics": {"accuracy_top1": row["accuracy"], "agreement": row["agreement"],
                        "latency_ms_median": row["latency_ms_median"], "latency_ms_p90": row["latency_ms_p90"],
                        "peak_rss_mb": row.get("peak_rss_mb"), "runtime": row.get("runtime"),
                        "runtime_version": row.get("runtime_version"), "threads": row.get("threads"),
                        "size_bytes": row["size_bytes"], "host": host(), "measured_by": "studio sweep"}}


def _write_results(run, config, info, results: dict, candidates, reference, labelled, options, started,
                   interrupted: bool, skipped=()) -> dict:
    order = [c.id for c in candidates]
    rows = [dict(results[i]) for i in order if i in results]
    front = set(pareto_ids(rows))
    for r in rows:
        r["pareto"] = r["id"] in front
    ref_score = reference.get("accuracy") if labelled else 100.0
    doc = {"schema_version": RESULTS_VERSION, "model": {"path": config["model"], "sha256": config["model_sha256"],
                                                         "format": info.format},
           "data": {"path": config["data"], "samples": reference.get("samples"), "labelled": labelled,
                    "synthetic": reference.get("synthetic", False)},
           "metric": "top-1 accuracy (%)" if labelled else "top-1 agreement with the original (%)",
           "reference": {k: v for k, v in reference.items() if k in ("accuracy", "samples")},
           "grid": config["grid"], "max_drop": options.max_drop, "candidates": rows,
           "pareto": [r["id"] for r in rows if r["pareto"]],
           "best": best(rows, ref_score, options.max_drop) if options.max_drop is not None else best(rows),
           "skipped": list(skipped), "pending": [i for i in order if i not in results], "interrupted": interrupted,
           "elapsed_s": round(time.monotonic() - started, 2), "host": host(), "versions": library_versions(),
           "threads": options.threads}
    sens = run / "sensitivity.json"
    doc["sensitivity"] = json.loads(sens.read_text(encoding="utf-8")) if sens.is_file() else None
    atomic.write_json(run / "results.json", doc)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "float_layers": ";".join(r.get("float_layers") or [])})
    atomic.write_text(run / "results.csv", buf.getvalue())
    return doc


def _sensitivity(run, work, model, info, grid, data_path, labelled, options, cancel, emit) -> None:
    """Per-layer sensitivity for the grid's quantization (int8) and structured pruning."""
    from studio.core.sweep.sensitivity import prune_sensitivity, quant_sensitivity

    out = {}
    arrays = dict(np.load(data_path))
    y = arrays["eval_y"] if arrays["eval_y"].size else None
    if QuantMode.INT8 in grid.quant:
        target = grid.targets[0]
        stage_file = work / f"{target}-p0.00" / "stage.pkl"
        if stage_file.is_file():
            stage = pickle.loads(stage_file.read_bytes())
            float_path = stage["float"]
            q = grid.base.quantization
            out["quantization"] = run_job(quant_sensitivity, float_path, q, arrays["calib_x"], arrays["eval_x"], y,
                                          cancel=cancel, what="quantization sensitivity")
    if labelled and info.framework == "pytorch" and grid.uses_structured_pruning:
        ratio = max(grid.prune)
        out["pruning"] = run_job(prune_sensitivity, model, info.format, options.arch, options.trust_pickle, ratio,
                                 arrays["eval_x"], y, cancel=cancel, what="pruning sensitivity")
    atomic.write_json(run / "sensitivity.json", out)
    emit({"type": "sensitivity", "sensitivity": out})
