"""Work a sweep hands to worker processes: the reference evaluation and one candidate's finish-and-evaluate."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.base.progress import ignore, scaled
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.formats import Framework
from studio.core.optimize.stage import FloatStage
from studio.core.quantize.backend import BACKENDS
from studio.core.recipe.recipe import QuantMode, Recipe
from studio.core.sweep.sensitivity import keep_sensitive_float, metric_value, score_outputs


def load_arrays(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def reference_job(model: str, framework: Framework, fmt: str, data_path: str, *, arch: ArchSpec | None = None,
                  trust_pickle: bool = False, report=ignore) -> dict:
    """The original model's outputs on the evaluation inputs, with its own framework (an independent check)."""
    arrays = load_arrays(data_path)
    x = arrays["eval_x"]
    if framework == Framework.PYTORCH:
        from studio.core.convert.torch_route import forward, load_module

        loaded = load_module(model, fmt, arch, trust_pickle)
        outputs = forward(loaded.module, x, loaded.batch)
    elif framework in (Framework.KERAS, Framework.TENSORFLOW):
        from studio.core.convert.tf_route import _call, _load

        m, fn = _load(model, fmt)
        outputs = _call(m, fn, x)
    else:
        from studio.core.measure.runtimes import open_runner, predict

        outputs = predict(open_runner(model), [x])
    y = arrays.get("eval_y")
    return {"outputs": outputs, **score_outputs(outputs, y if y is not None and y.size else None, None)}


@dataclass(frozen=True, eq=False)
class CandidateJob:
    """One candidate to finish from its group's float stage, and how to judge it."""
    stage: FloatStage
    framework: Framework  # the source's
    recipe: Recipe
    data_path: str  # RUN/work/data.npz: eval_x, eval_y, calib_x, verify_x and the reference outputs
    out: str
    ref_score: float | None = None
    max_drop: float | None = None  # accuracy-aware mode: keep sensitive layers in float beyond this drop
    deadline: float | None = None


@dataclass(frozen=True, eq=False)
class CandidateOutcome:
    scores: dict[str, Any]
    size_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    float_layers: list[str] = field(default_factory=list)
    bound_met: bool | None = None


def candidate_job(job: CandidateJob, report=ignore) -> CandidateOutcome:
    """Finish one candidate from its group's float model (check, prune weights, quantize), then measure its
    accuracy and agreement on the evaluation data; in accuracy-aware mode keep sensitive layers in float."""
    from studio.core.measure.runtimes import open_runner, predict

    started = time.monotonic()
    arrays = load_arrays(job.data_path)
    verify_x, calib_x, x = arrays["verify_x"], arrays["calib_x"], arrays["eval_x"]
    y = arrays["eval_y"] if arrays["eval_y"].size else None
    reference = [arrays[k] for k in sorted(arrays) if k.startswith("ref_out")]  # ref_out000, ref_out001, ...
    request = job.stage.finish_request(job.recipe, verify_x, calib_x, job.out, source_framework=job.framework)
    done = BACKENDS[job.recipe.target].finish(request, report=scaled(report, 0.0, 0.5))
    report(0.55, "evaluating")
    scores = score_outputs(predict(open_runner(job.out), [x]), y, reference)
    metric = "accuracy" if "accuracy" in scores else "agreement"
    value, q = metric_value(scores, metric), job.recipe.quantization
    kept: dict[str, Any] = {}
    if job.max_drop is not None and job.ref_score is not None and q.mode == QuantMode.INT8 \
            and job.ref_score - value > job.max_drop and q.mode not in job.stage.quantized:
        report(0.7, f"{job.ref_score - value:.2f} points lost: keeping sensitive layers in float")
        kept = keep_sensitive_float(done.float_path, job.out, q, calib_x, x, y, reference=reference,
                                    ref_score=job.ref_score, max_drop=job.max_drop, metric=metric,
                                    report=scaled(report, 0.7, 0.95), deadline=job.deadline)
        scores = score_outputs(predict(open_runner(job.out), [x]), y, reference)
    report(1.0, "candidate done")
    return CandidateOutcome(scores=scores, size_bytes=os.path.getsize(job.out),
                            seconds=round(time.monotonic() - started, 2), notes=done.notes,
                            float_layers=kept.get("float_layers", []), bound_met=kept.get("met"))
