"""The quantization debugger of one sweep candidate: per-layer error between its float model and the quantized one
on the run's own evaluation samples; and "keep these layers in float": the candidate quantized again with those
nodes left in float, measured like every candidate and added to the run's results (RUN/ID-floatK)."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.core.base import atomic
from studio.core.base.errors import StudioError
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore, scaled
from studio.core.inspect.formats import Framework
from studio.core.measure.fidelity import Floors, Scoring
from studio.core.measure.latency import LatencyOptions
from studio.core.quantize.backend import backend_for_file
from studio.core.quantize.onnx_debug import LayerError
from studio.core.recipe.grid import Candidate, Grid
from studio.core.recipe.recipe import QuantMode, Recipe, Target
from studio.core.sweep import eval_data
from studio.core.sweep.jobs import CandidateOutcome
from studio.core.sweep.records import CandidateResult
from studio.core.sweep.results import ResultsContext, ResultsWriter, measured_row
from studio.core.sweep.run_folder import RunFolder
from studio.core.sweep.sweep import load_stage
from studio.core.tensors.shapes import InputShape

SAMPLES = 64  # evaluation samples the layers are compared on: enough to rank them, small enough to hold every tensor


class DebugError(StudioError):
    """The candidate cannot be debugged (not an int8 candidate, not in a run, its float stage is gone)."""


@dataclass(frozen=True)
class QuantDebug:
    candidate: str
    samples: int
    layers: tuple[LayerError, ...]  # worst (lowest SQNR) first

    def worst(self, count: int) -> tuple[LayerError, ...]:
        return self.layers[:count]

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        layers = self.layers if top is None else self.worst(top)
        return {"candidate": self.candidate, "samples": self.samples, "metric": "sqnr_db",
                "layers": [r.to_dict() for r in layers]}


@dataclass(frozen=True, eq=False)
class DebugJob:
    """A candidate's quantized model and what remaking its float model and reading its samples takes."""
    quantized: str
    recipe: Recipe
    stage_float: str  # the group's float stage (RUN/work/TARGET-pR/converted.EXT, or the source itself)
    opset: int | None  # the recipe's opset when the source is ONNX (finish converts it), else None
    prune: float | None  # unstructured pruning finish applied to the float stage (TFLite: the recipe's pruning)
    data_path: str
    inputs: tuple[InputShape, ...]
    available: int  # evaluation samples in the run
    scoring: Scoring = Scoring()  # the sweep's --score-output, --metric and gate
    samples: int = SAMPLES


def debug_job(job: DebugJob, report: Report = ignore) -> list[LayerError]:
    """In a worker: the float model again, then every layer's error."""
    with tempfile.TemporaryDirectory(prefix="studio-qdebug-") as tmp:
        report(0.1, "making the float model")
        float_path = _float_model(job, tmp)
        samples = eval_data.read(job.data_path, job.inputs).samples.head(job.samples)
        report(0.3, "running both models on the samples")
        if job.recipe.target == Target.TFLITE:
            from studio.core.quantize import tflite_debug

            return tflite_debug.layer_errors(float_path, job.quantized, samples)
        from studio.core.quantize import onnx_debug

        return onnx_debug.layer_errors(float_path, job.quantized, samples, Path(tmp))


def keep_float_job(job: DebugJob, nodes: tuple[str, ...], out: str, report: Report = ignore) -> CandidateOutcome:
    """In a worker: quantize the float model again with `nodes` in float; score it as a sweep does."""
    from studio.core.measure.runtimes import open_runner, predict
    from studio.core.measure.scores import score_outputs
    from studio.core.quantize.backend import BACKENDS

    started, q = time.monotonic(), job.recipe.quantization
    data = eval_data.read(job.data_path, job.inputs)
    with tempfile.TemporaryDirectory(prefix="studio-qdebug-") as tmp:
        float_path = _float_model(job, tmp)
        report(0.2, f"quantizing with {len(nodes)} node(s) in float")
        BACKENDS[job.recipe.target].quantize(float_path, out, q, data.calib(q.calib_samples), exclude=nodes)
    report(0.7, "evaluating")
    runner = open_runner(out)  # its outputs keep the source's, in order
    scores = score_outputs(predict(runner, data.samples), data.y, data.reference, job.scoring,
                           [o.name for o in runner.outputs])
    return CandidateOutcome(scores=scores, size_bytes=os.path.getsize(out),
                            seconds=round(time.monotonic() - started, 2), float_layers=list(nodes),
                            notes=[f"kept in float by the quantization debugger: {', '.join(nodes)}"])


def _float_model(job: DebugJob, folder: str) -> str:
    """The float model the candidate was quantized from, made again in `folder` as its finish made it."""
    out = f"{folder}/float.{job.recipe.target.value}"
    if job.recipe.target == Target.TFLITE:
        from studio.core.quantize import tflite_debug

        tflite_debug.float_model(job.stage_float, out, job.recipe.pruning if job.prune else None)
    else:
        from studio.core.quantize import onnx_debug

        onnx_debug.float_model(job.stage_float, out, opset=job.opset, prune=job.prune)
    return out


def debug_candidate(path: str | os.PathLike, *, samples: int = SAMPLES, report: Report = ignore,
                    cancel: CancelToken | None = None) -> QuantDebug:
    """Per-layer error of candidate RUN/ID against its float model, worst first."""
    _, row, job = _open(path)
    job = replace(job, samples=samples)
    layers = run_job(debug_job, job, report=report, cancel=cancel, what=f"the quantization debugger of {row.id}",
                     kind=backend_for_file(job.quantized).kind)
    return QuantDebug(row.id, min(samples, job.available), tuple(layers))


def keep_in_float(path: str | os.PathLike, nodes: tuple[str, ...], *, report: Report = ignore,
                  cancel: CancelToken | None = None) -> CandidateResult:
    """Candidate RUN/ID quantized again with `nodes` (and the nodes it already kept) in float, measured, written to
    RUN/candidates/ID-floatK and recorded in RUN's results."""
    from studio.core.measure.evaluate import measure_latency

    run, row, job = _open(path)
    if not nodes:
        raise DebugError("choose at least one layer to keep in float", path)
    kept = tuple(dict.fromkeys((*row.float_layers, *nodes)))
    candidate = Candidate(f"{re.sub(r'-float[0-9]+$', '', row.id)}-float{len(kept)}", row.recipe)
    cdir, name = run.candidate(candidate.id), f"model.{row.target}"
    shutil.rmtree(cdir, ignore_errors=True)
    cdir.mkdir(parents=True)
    try:
        got = run_job(keep_float_job, job, kept, str(cdir / name), report=scaled(report, 0.0, 0.8), cancel=cancel,
                      what=f"candidate {candidate.id}", kind=backend_for_file(job.quantized).kind)
        for stray in cdir.iterdir():  # the quantizer's scratch files
            if stray.name != name:
                stray.unlink()
        report(0.85, "timing")
        data = eval_data.read(job.data_path, job.inputs)
        writer = _writer(run)
        latency = run_job(measure_latency, str(cdir / name), data.samples.head(1), _timing(writer.context),
                          cancel=cancel, what=f"latency of {candidate.id}")
    except BaseException:
        shutil.rmtree(cdir, ignore_errors=True)
        raise
    new = measured_row(candidate, got, latency, labelled=writer.context.labelled,
                       path=f"{cdir.relative_to(run.root)}/{name}")
    atomic.write_json(run.candidate_meta(candidate.id), writer.candidate_meta(new))
    before = _json(run.results)  # what the sweep said of itself: recording rewrites it
    recorded = writer.record(new).candidate
    writer.write(interrupted=bool(before.get("interrupted")), skipped=before.get("skipped") or ())
    writer.plot()
    report(1.0, f"{candidate.id} added")
    return recorded


def _open(path: str | os.PathLike) -> tuple[RunFolder, CandidateResult, DebugJob]:
    found = RunFolder.of_candidate(path)
    if found is None:
        raise DebugError("is not a candidate of a sweep run (give RUN/ID, with ID one of RUN/candidates)", path)
    run, cid = found
    doc = _json(run.results)
    row = next((CandidateResult.from_dict(c) for c in doc["candidates"] if c["id"] == cid), None)
    if row is None or not row.ok:
        raise DebugError(f"candidate {cid} has no measured model" + (f" ({row.error})" if row else ""), path)
    if row.quant != QuantMode.INT8:
        what = "not quantized" if row.quant == QuantMode.NONE else f"quantized '{row.quant}'"
        raise DebugError(f"{cid} is {what}: the debugger compares an int8 (static) candidate with its float model",
                         path)
    stage = load_stage(run.stage(row.target.value, row.prune_ratio) / "stage.pkl")
    if stage is None:
        raise DebugError(f"the float stage of {cid} is missing from {run.work}: run the sweep again", path)
    reference = _json(run.work / "reference.json")
    source_is_onnx = doc["model"]["format"] == Framework.ONNX.value
    quantized = row.path or f"candidates/{cid}/model.{row.target.value}"
    job = DebugJob(quantized=str(run.root / quantized), recipe=row.recipe,
                   stage_float=stage.float_path, opset=row.recipe.runtime.opset if source_is_onnx else None,
                   prune=row.prune_ratio if stage.prune_in_finish else None, data_path=str(run.work / "data.npz"),
                   inputs=eval_data.inputs_from_json(reference["inputs"]), available=int(reference["samples"]),
                   scoring=_scoring(_json(run.config)))
    return run, row, job


def _writer(run: RunFolder) -> ResultsWriter:
    """The run's results writer as the sweep made it (rows not of the grid, like this one, come after its own)."""
    doc, config = _json(run.results), _json(run.config)
    order = tuple(c.id for c in Grid.from_dict(config["grid"]).candidates())
    options = config.get("options") or {}
    context = ResultsContext(config, doc["model"]["format"], _json(run.work / "reference.json"), order,
                             options.get("max_drop"), int(options.get("threads") or 1),
                             time.monotonic() - float(doc.get("elapsed_s") or 0))
    return ResultsWriter(run, context)


def _timing(context: ResultsContext) -> LatencyOptions:
    """The sweep's latency options as sweep.json keeps them (no latency_rounds key: the default)."""
    rounds = (context.config.get("options") or {}).get("latency_rounds")
    return LatencyOptions(threads=context.threads, rounds=int(rounds or LatencyOptions.rounds))


def _scoring(config: dict[str, Any]) -> Scoring:
    """The sweep's scoring as sweep.json keeps it (absent: the default)."""
    kept = (config.get("options") or {}).get("scoring")
    return Scoring(kept["output"], kept["metric"], Floors(**kept["floors"])) if kept else Scoring()


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DebugError(f"cannot be read ({exc.__class__.__name__}): run the sweep again", path) from None
