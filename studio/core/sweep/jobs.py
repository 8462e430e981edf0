"""Work a sweep hands to worker processes: the reference evaluation and one candidate's finish-and-evaluate."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from studio.core.base.progress import ignore, scaled
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.formats import Framework
from studio.core.measure.fidelity import Scoring
from studio.core.measure.scores import Scores, score_outputs
from studio.core.optimize.stage import FloatStage
from studio.core.quantize.backend import BACKENDS
from studio.core.recipe.recipe import QuantMode, Recipe
from studio.core.sweep import eval_data
from studio.core.sweep.sensitivity import keep_sensitive_float
from studio.core.tensors.shapes import InputShape


def reference_job(model: str, framework: Framework, fmt: str, data_path: str, inputs: tuple[InputShape, ...], *,
                  scoring: Scoring, names: tuple[str, ...], arch: ArchSpec | None = None, trust_pickle: bool = False,
                  trust_code: bool = False, report=ignore) -> dict:
    """The original model's outputs on the evaluation inputs, with its own framework (an independent check)."""
    data = eval_data.read(data_path, inputs)
    x = data.samples
    if framework == Framework.PYTORCH:
        from studio.core.convert.torch_route import forward, load_module

        loaded = load_module(model, fmt, arch, trust_pickle)
        outputs = forward(loaded.module, x, loaded.batch)
    elif framework in (Framework.KERAS, Framework.TENSORFLOW):
        from studio.core.convert.tf_route import _call, _load

        m, fn = _load(model, fmt)
        outputs = _call(m, fn, x)
    else:
        from studio.core.measure.runtimes import eval_threads, open_runner, predict

        outputs = predict(open_runner(model, eval_threads()), x)
    scores = score_outputs(outputs, data.y, None, scoring, names, trust_code)
    return {"outputs": outputs, "accuracy": scores.accuracy, "metric": scores.metric.value,
            "metric_name": scores.metric_name, "metric_value": scores.value, "scoring_output": scores.scoring_output}


@dataclass(frozen=True, eq=False)
class CandidateJob:
    """One candidate to finish from its group's float stage, and how to judge it."""
    stage: FloatStage
    framework: Framework  # the source's
    recipe: Recipe
    data_path: str  # RUN/work/data.npz: the evaluation samples, labels and reference outputs (eval_data)
    inputs: tuple[InputShape, ...]  # the source's inputs at the resolved shapes
    out: str
    scoring: Scoring = Scoring()
    output_names: tuple[str, ...] = ()  # the source's outputs, which the candidate's keep in order
    trust_code: bool = False  # a --metric of the user's own may run
    ref_score: float | None = None
    max_drop: float | None = None  # accuracy-aware mode: keep sensitive layers in float beyond this drop
    deadline: float | None = None
    sharing: int = 1  # candidate jobs evaluating at once on one machine: they share its cores


@dataclass(frozen=True, eq=False)
class CandidateOutcome:
    scores: Scores
    size_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    float_layers: list[str] = field(default_factory=list)
    bound_met: bool | None = None


def candidate_job(job: CandidateJob, report=ignore) -> CandidateOutcome:
    """Finish one candidate from its group's float model (check, prune weights, quantize), then measure its
    accuracy and agreement on the evaluation data; in accuracy-aware mode keep sensitive layers in float."""
    from studio.core.measure.runtimes import eval_threads, open_runner, predict

    started = time.monotonic()
    data = eval_data.read(job.data_path, job.inputs)
    x, y, reference = data.samples, data.y, data.reference
    verify_x, calib_x = data.verify(), data.calib(job.recipe.quantization.calib_samples)
    request = job.stage.finish_request(job.recipe, verify_x, calib_x, job.out, source_framework=job.framework)
    done = BACKENDS[job.recipe.target].finish(request, report=scaled(report, 0.0, 0.5))
    report(0.55, "evaluating")

    def score(outputs) -> Scores:
        return score_outputs(outputs, y, reference, job.scoring, job.output_names, job.trust_code)

    threads = eval_threads(job.sharing)
    scores, q = score(predict(open_runner(job.out, threads), x)), job.recipe.quantization
    kept: dict[str, Any] = {}
    if job.max_drop is not None and job.ref_score is not None and q.mode == QuantMode.INT8 and \
            scores.value is not None and job.ref_score - scores.value > job.max_drop and \
            q.mode not in job.stage.quantized:
        report(0.7, f"{job.ref_score - scores.value:.2f} points lost: keeping sensitive layers in float")
        kept = keep_sensitive_float(done.float_path, job.out, q, calib_x, x, y, score=lambda o: score(o).value,
                                    ref_score=job.ref_score, max_drop=job.max_drop,
                                    report=scaled(report, 0.7, 0.95), deadline=job.deadline)
        scores = score(predict(open_runner(job.out, threads), x))
    report(1.0, "candidate done")
    return CandidateOutcome(scores=scores, size_bytes=os.path.getsize(job.out),
                            seconds=round(time.monotonic() - started, 2), notes=done.notes,
                            float_layers=kept.get("float_layers", []), bound_met=kept.get("met"))
