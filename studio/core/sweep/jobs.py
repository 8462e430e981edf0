"""Work a sweep hands to worker processes: the reference evaluation and one candidate's finish-and-evaluate."""
from __future__ import annotations

import os
import time

import numpy as np

from studio.core.base.progress import ignore, scaled
from studio.core.sweep.sensitivity import keep_sensitive_float, score_outputs


def load_arrays(path: str) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def reference_job(model: str, framework: str, fmt: str, arch, trust_pickle: bool, data_path: str,
                  report=ignore) -> dict:
    """The original model's outputs on the evaluation inputs, with its own framework (an independent check)."""
    arrays = load_arrays(data_path)
    x = arrays["eval_x"]
    if framework == "pytorch":
        from studio.core.convert.torch_route import forward, load_module

        module, _, _ = load_module(model, fmt, arch, trust_pickle)
        outputs = forward(module, x)
    elif framework in ("keras", "tensorflow"):
        from studio.core.convert.tf_route import _call, _load

        m, fn = _load(model, fmt)
        outputs = _call(m, fn, x)
    else:
        from studio.core.measure.runtimes import open_runner, predict

        outputs = predict(open_runner(model), [x])
    y = arrays.get("eval_y")
    return {"outputs": outputs, **score_outputs(outputs, y if y is not None and y.size else None, None)}


def candidate_job(stage: dict, framework: str, recipe, data_path: str, out: str, ref_score: float | None,
                  max_drop: float | None, deadline: float | None, report=ignore) -> dict:
    """Finish one candidate from its group's float model (check, prune weights, quantize), then measure its
    accuracy and agreement on the evaluation data; in accuracy-aware mode keep sensitive layers in float."""
    from studio.core.measure.runtimes import open_runner, predict
    from studio.core.quantize.onnx_quant import finish_onnx
    from studio.core.quantize.tflite_quant import finish_tflite
    from studio.core.recipe.recipe import QuantMode, Target

    started = time.monotonic()
    arrays = load_arrays(data_path)
    verify_x, calib_x, x = arrays["verify_x"], arrays["calib_x"], arrays["eval_x"]
    y = arrays["eval_y"] if arrays["eval_y"].size else None
    reference = [arrays[k] for k in sorted(arrays) if k.startswith("ref_out")]  # ref_out000, ref_out001, ...
    finish_report = scaled(report, 0.0, 0.5)
    if recipe.target == Target.ONNX:
        done = finish_onnx(stage["float"], out, recipe, stage["ref"], verify_x, calib_x, stage["prune_in_finish"],
                           framework == "onnx", stage["what"], report=finish_report)
    else:
        done = finish_tflite(stage["float"], out, recipe, stage["ref"], verify_x, calib_x, stage["prune_in_finish"],
                             stage["quantized"].get(recipe.quantization.mode.value), stage["what"],
                             report=finish_report)
    report(0.55, "evaluating")
    scores = score_outputs(predict(open_runner(out), [x]), y, reference)
    result = {"scores": scores, "notes": done.get("notes", []), "steps": done.get("steps", []),
              "conversion_check": done.get("conversion_check"), "float_layers": []}
    metric = "accuracy" if "accuracy" in scores else "agreement"
    value = scores.get("accuracy") if metric == "accuracy" else scores.get("top1_agreement", scores["cosine"] * 100)
    q = recipe.quantization
    if max_drop is not None and ref_score is not None and q.mode == QuantMode.INT8 and ref_score - value > max_drop \
            and done.get("float_path") and stage.get("quantized", {}).get(q.mode.value) is None:
        report(0.7, f"{ref_score - value:.2f} points lost: keeping sensitive layers in float")
        kept = keep_sensitive_float(done["float_path"], out, q, calib_x, x, y, reference, ref_score, max_drop, metric,
                                    report=scaled(report, 0.7, 0.95), deadline=deadline)
        scores = score_outputs(predict(open_runner(out), [x]), y, reference)
        result.update(scores=scores, float_layers=kept["float_layers"], bound_met=kept["met"],
                      sensitivity=kept["sensitivity"])
    result["size_bytes"] = os.path.getsize(out)
    result["seconds"] = round(time.monotonic() - started, 2)
    report(1.0, "candidate done")
    return result
