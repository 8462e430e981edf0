"""`optimize`: turn a model plus a Recipe into a runnable ONNX or TFLite file and an honest report.

Each framework step runs in its own worker process (PyTorch, TensorFlow, onnxruntime and ai-edge-litert never
share one), float conversions are checked numerically against the source, and only finished files are renamed
into the output folder."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from studio.core.base import atomic
from studio.core.base.errors import ConversionError, DataError, RecipeError
from studio.core.base.hashing import source_digest
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore, scaled
from studio.core.base.versions import host, library_versions
from studio.core.data.datasets import load_dataset, prepare, synthetic
from studio.core.inspect.formats import Framework
from studio.core.inspect.inspector import inspect_model
from studio.core.inspect.modelinfo import ModelInfo
from studio.core.recipe.recipe import PruneMethod, QuantMode, Recipe, Target, check_source

VERIFY_SAMPLES = 16
REPORT_VERSION = 1


def reference_outputs(path: str, x: np.ndarray, report=ignore) -> list[np.ndarray]:
    """Outputs of an ONNX or TFLite source on float inputs (run in a runtime worker)."""
    from studio.core.measure.runtimes import open_runner, predict

    return predict(open_runner(path), [x])


def is_quantized(info: ModelInfo) -> bool:
    weights = info.weight_dtypes
    integer = sum(v for k, v in weights.items() if k in ("int8", "uint8", "int4"))
    return integer > 0.5 * max(1, sum(weights.values()))


def has_module(info: ModelInfo) -> bool:
    return (info.format in ("torch_state_dict", "torch_module") and bool(info.inputs)) or (
        info.format == "torch_export" and bool(info.details.get("studio", {}).get("arch")))


def input_shape_of(info: ModelInfo, given) -> tuple[int, ...]:
    if given:
        return tuple(given)
    if len(info.inputs) != 1:
        raise ConversionError(f"optimize handles models with one input; this one has {len(info.inputs)}", info.path)
    shape = info.inputs[0].shape
    if not shape or any(isinstance(d, str) for d in shape[1:]):
        raise ConversionError(f"the input shape {info.inputs[0].shape_text()} is not fully known: pass --input-shape",
                              info.path)
    return (1, *tuple(int(d) for d in shape[1:]))


def load_inputs(path: str | None, shape, recipe: Recipe, limit: int) -> tuple[np.ndarray | None, object]:
    if not path:
        return None, None
    ds = load_dataset(path, limit=limit, resize=recipe.preprocess.resize)
    return prepare(ds.x, shape, recipe.preprocess, str(path)), ds


def compressed_size(path: str) -> int:
    return len(zlib.compress(Path(path).read_bytes(), 6))


def optimize(model: str | os.PathLike, recipe: Recipe, out_dir: str | os.PathLike, *, calib: str | None = None,
             finetune: str | None = None, arch: str | None = None, trust_pickle: bool = False, input_shape=None,
             report: Report = ignore, cancel: CancelToken | None = None) -> dict:
    """Write OUT/model.onnx or OUT/model.tflite and OUT/report.json; returns the report."""
    started = time.monotonic()
    model = os.fspath(model)
    out_dir = Path(out_dir)
    report(0.0, "inspecting the source model")
    info = inspect_model(model, arch=arch, trust_pickle=trust_pickle, input_shape=input_shape, cancel=cancel)
    info.require_runnable(ConversionError, "cannot optimize a model its runtime refuses", model, runtimes_only=True)
    try:
        check_source(recipe, info.format, has_module(info), is_quantized(info))
    except RecipeError as exc:
        raise RecipeError(exc.message, model) from None
    shape = input_shape_of(info, input_shape)
    q, p = recipe.quantization, recipe.pruning
    warnings: list[str] = []
    calib_x, calib_ds = load_inputs(calib, shape, recipe, max(q.calib_samples, VERIFY_SAMPLES))
    if calib_x is None:
        calib_x = synthetic(shape, max(q.calib_samples, VERIFY_SAMPLES))
        if q.mode == QuantMode.INT8:
            warnings.append("no calibration data given: static int8 was calibrated on synthetic random inputs, so"
                            " its accuracy is likely much worse than with real samples (pass --calib DATA)")
    verify_x = calib_x[:VERIFY_SAMPLES]
    train = None
    if p.method == PruneMethod.STRUCTURED and p.finetune_epochs:
        if not finetune:
            warnings.append("fine-tuning was asked for but no training data was given (--finetune DATA): skipped")
        else:
            train_x, train_ds = load_inputs(finetune, shape, recipe, limit=None)
            if not train_ds.labelled:
                raise DataError("fine-tuning needs labelled data ('y' in the .npz, or class folders)", finetune)
            train = (train_x, train_ds.y)
    elif p.method == PruneMethod.STRUCTURED and not p.finetune_epochs:
        warnings.append("structured pruning without recovery fine-tuning loses accuracy; give --finetune DATA")

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=out_dir))
    final_name = "model.onnx" if recipe.target == Target.ONNX else "model.tflite"
    try:
        stages = _run_stages(model, info, recipe, shape, verify_x, calib_x, train, work, final_name, arch,
                             trust_pickle, scaled(report, 0.05, 0.9), cancel)
        report(0.92, "inspecting the result")
        out_info = inspect_model(work / final_name, cancel=cancel)
        out_info.require_runnable(ConversionError, "the result does not run")
        doc = _report(model, info, recipe, out_info, stages, warnings, calib, calib_ds, final_name, started,
                      work / final_name)
        os.replace(work / final_name, out_dir / final_name)
        atomic.write_json(out_dir / "report.json", doc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(1.0, f"wrote {out_dir / final_name}")
    return doc


def float_stage(model, info, recipe, shape, verify_x, calib_x, train, work: Path, arch, trust_pickle, report=ignore,
                cancel=None, quant_modes=()) -> dict:
    """Convert (and prune) the source to a float model of the recipe's target: the part every quantization mode of
    the same target and pruning shares. Returns the float path, reference outputs on verify_x, and (for Keras to
    TFLite) models already quantized by TFLiteConverter for `quant_modes`."""
    from studio.core.convert.tf_route import keras_stage, tflite_to_onnx
    from studio.core.convert.torch_route import onnx_to_tflite, torch_stage

    fw, target = info.framework, recipe.target
    floated = str(work / ("converted.onnx" if target == Target.ONNX else "converted.tflite"))
    stage = {"what": f"{fw.display_name} -> {Framework(target).display_name}", "float": floated, "ref": None,
             "first": {"steps": []},
             "prune_in_finish": recipe.pruning.method == PruneMethod.UNSTRUCTURED, "quantized": {}}

    def job(fn, *args, name, rep=ignore):
        return run_job(fn, *args, report=rep, cancel=cancel, what=name)

    if fw == "pytorch":
        first = job(torch_stage, model, info.format, recipe, arch, trust_pickle, shape, verify_x, floated, train,
                    rep=report, name="the PyTorch converter")
        stage.update(first=first, ref=first["ref"], prune_in_finish=bool(first.get("prune_later")))
    elif fw in ("keras", "tensorflow"):
        quantized = {m: str(work / f"quantized-{m}.tflite") for m in quant_modes if m != QuantMode.NONE.value} \
            if target == Target.TFLITE else {}
        first = job(keras_stage, model, info.format, recipe, verify_x, calib_x, floated, quantized, rep=report,
                    name="the TensorFlow converter")
        stage.update(first=first, ref=first["ref"], prune_in_finish=False, quantized=first.get("quantized", {}))
    elif fw == target.value:  # ONNX -> ONNX or TFLite -> TFLite: the finishing step works on the source itself
        stage["float"] = model
    elif fw == "onnx":  # -> TFLite
        stage["ref"] = job(reference_outputs, model, verify_x, name="onnxruntime")
        stage["first"] = job(onnx_to_tflite, model, shape, floated, rep=report, name="the ONNX -> TFLite converter")
    else:  # TFLite -> ONNX
        stage["ref"] = job(reference_outputs, model, verify_x, name="ai-edge-litert")
        stage["first"] = job(tflite_to_onnx, model, recipe.runtime.opset, floated, rep=report, name="tf2onnx")
    stage["first"].setdefault("ref_before", stage["ref"])
    return stage


def finish(stage: dict, info, recipe, verify_x, calib_x, out: str, report=ignore, cancel=None) -> dict:
    """Check the float model against the source, prune weights if due, quantize: the per-candidate step."""
    from studio.core.quantize.onnx_quant import finish_onnx
    from studio.core.quantize.tflite_quant import finish_tflite

    if recipe.target == Target.ONNX:
        return run_job(finish_onnx, stage["float"], out, recipe, stage["ref"], verify_x, calib_x,
                       stage["prune_in_finish"], info.framework == "onnx", stage["what"], report=report,
                       cancel=cancel, what="onnxruntime")
    return run_job(finish_tflite, stage["float"], out, recipe, stage["ref"], verify_x, calib_x,
                   stage["prune_in_finish"], stage["quantized"].get(recipe.quantization.mode.value), stage["what"],
                   report=report, cancel=cancel, what="ai-edge-litert")


def _run_stages(model, info, recipe, shape, verify_x, calib_x, train, work: Path, final_name, arch, trust_pickle,
                report, cancel) -> dict:
    stage = float_stage(model, info, recipe, shape, verify_x, calib_x, train, work, arch, trust_pickle,
                        scaled(report, 0.0, 0.6), cancel, quant_modes=(recipe.quantization.mode.value,))
    second = finish(stage, info, recipe, verify_x, calib_x, str(work / final_name), scaled(report, 0.6, 1.0), cancel)
    return {"first": stage["first"], "second": second, "what": stage["what"]}


def _report(model, info, recipe, out_info, stages, warnings, calib, calib_ds, final_name, started, final_path) -> dict:
    from studio.core.measure.verify import compare

    first, second = stages["first"], stages["second"]
    steps = first.get("steps", []) + second.get("steps", [])
    notes = first.get("notes", []) + second.get("notes", [])
    pruning_effect = second.get("pruning_effect")
    if first.get("ref") is not None and first.get("ref_before") is not None and \
            recipe.pruning.method != PruneMethod.NONE and pruning_effect is None:
        pruning_effect = compare(first["ref_before"], first["ref"])
    if recipe.pruning.method == PruneMethod.UNSTRUCTURED:
        warnings.append("unstructured pruning only zeroes weights: the file compresses smaller (see"
                        " compressed_size_bytes) but onnxruntime and ai-edge-litert run it no faster")
    out_size = out_info.size_bytes
    doc = {
        "schema_version": REPORT_VERSION,
        "source": {"path": str(model), "format": info.format, "sha256": source_digest(info.files),
                   "size_bytes": info.size_bytes, "params": info.params,
                   "macs": info.macs, "compressed_size_bytes": _dir_or_file_compressed(info)},
        "output": {"path": final_name, "format": out_info.format, "size_bytes": out_size, "params": out_info.params,
                   "macs": first.get("macs_after") if first.get("macs_after") is not None else out_info.macs,
                   "compressed_size_bytes": compressed_size(str(final_path)),
                   "inputs": [t.__dict__ | {"quantization": t.quantization.__dict__ if t.quantization else None}
                              for t in out_info.inputs],
                   "weight_dtypes": out_info.weight_dtypes},
        "recipe": recipe.to_dict(),
        "conversion": {"route": stages["what"], "check": second.get("conversion_check")},
        "pruning_effect": pruning_effect,
        "quantization_effect": second.get("quantization_effect"),
        "params_before": first.get("params_before", info.params), "params_after": first.get("params_after",
                                                                                           out_info.params),
        "macs_before": first.get("macs_before", info.macs),
        "steps": steps,
        "calibration": {"source": str(calib) if calib else "synthetic",
                        "samples": min(recipe.quantization.calib_samples, len(calib_ds) if calib_ds else 10 ** 9)}
        if recipe.quantization.mode == QuantMode.INT8 else None,
        "warnings": warnings,
        "notes": notes,
        "time_s": round(time.monotonic() - started, 2),
        "versions": library_versions(),
        "host": host(),
    }
    doc["size_ratio"] = round(out_size / info.size_bytes, 4) if info.size_bytes else None
    return doc


def _dir_or_file_compressed(info: ModelInfo) -> int | None:
    files = [f for f in info.files if os.path.isfile(f)]
    return sum(compressed_size(f) for f in files) if files else None
