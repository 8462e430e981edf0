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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from studio.core.base import atomic
from studio.core.base.errors import Cancelled, ConversionError, DataError, RecipeError, StudioError
from studio.core.base.hashing import source_digest
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken, Report, ignore, scaled
from studio.core.base.versions import host, library_versions
from studio.core.data.datasets import Dataset, load_dataset
from studio.core.data.feeding import fit, shapes_from_data
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.inspector import inspect_model
from studio.core.inspect.modelinfo import ModelInfo, TensorKind
from studio.core.measure.fidelity import Scoring
from studio.core.optimize.stage import (
    FloatStage,
    StageRequest,
    finish,
    float_stage,
    reference_outputs,
    warm_ahead,
)
from studio.core.quantize.backend import BACKENDS, FinishResult, backend_for_file
from studio.core.recipe.recipe import PruneMethod, QuantMode, Recipe, check_source
from studio.core.tensors.samples import Samples, TrainingData, synthetic
from studio.core.tensors.shapes import InputShape, ShapeRequest, resolve

VERIFY_SAMPLES = 16
REPORT_VERSION = 1


def is_quantized(info: ModelInfo) -> bool:
    weights = info.weight_dtypes
    integer = sum(v for k, v in weights.items() if k in ("int8", "uint8", "int4"))
    return integer > 0.5 * max(1, sum(weights.values()))


def has_module(info: ModelInfo) -> bool:
    return (info.format in ("torch_state_dict", "torch_module") and bool(info.inputs)) or (
        info.format == "torch_export" and bool(info.details.get("studio", {}).get("arch")))


def inspect_source(model: str, *, arch: ArchSpec | None, trust_pickle: bool, shapes: ShapeRequest, data: str | None,
                   cancel: CancelToken | None = None) -> ModelInfo:
    """The source inspected at the shapes the user gave; a PyTorch module whose inputs lack a shape is inspected
    again at the shapes (and dtypes) of the data's arrays named after them."""
    info = inspect_model(model, arch=arch, trust_pickle=trust_pickle, shapes=shapes, cancel=cancel)
    unknown = [t.name for t in info.inputs if t.kind == TensorKind.UNKNOWN]
    if not unknown or not data or not str(data).lower().endswith(".npz"):
        return info
    seen = shapes_from_data(load_dataset(data), unknown)
    if not seen:
        return info
    return inspect_model(model, arch=arch, trust_pickle=trust_pickle, shapes=shapes.merged(seen), cancel=cancel)


def resolved_inputs(info: ModelInfo, shapes: ShapeRequest) -> tuple[InputShape, ...]:
    """The source's inputs at the shapes they run at, without data: given, else static (ShapeError otherwise)."""
    if not info.inputs:
        raise ConversionError("the model declares no inputs: pass --input-shape", info.path)
    return resolve(info.inputs, shapes, path=info.path)


@dataclass(frozen=True, eq=False)
class SourceData:
    """A dataset as the source model's inputs: samples at the resolved shapes, the labels, and what was done."""
    samples: Samples
    dataset: Dataset | None  # None: synthetic samples
    notes: tuple[str, ...] = ()


def source_data(info: ModelInfo, shapes: ShapeRequest, path: str | None, recipe: Recipe, limit: int | None,
                synthetic_count: int = 0) -> SourceData:
    """The dataset at `path` fitted to the source's inputs (its shapes resolve dynamic dims the user left open), or
    `synthetic_count` random samples at the resolved shapes when there is no path."""
    if not path:
        return SourceData(synthetic(resolved_inputs(info, shapes), synthetic_count), None)
    ds = load_dataset(path, limit=limit, resize=recipe.preprocess.resize)
    fitted = fit(ds, info.inputs, shapes, recipe.preprocess, limit)
    return SourceData(fitted.samples, ds, fitted.notes)


def finetune_data(path: str, info: ModelInfo, shapes: ShapeRequest, recipe: Recipe) -> TrainingData:
    """Recovery fine-tuning inputs (all of them, fed as for evaluation) and labels, prepared as the recipe says;
    DataError when they carry no labels."""
    data = source_data(info, shapes, path, recipe, limit=None)
    ds = data.dataset
    if ds is None or not ds.labelled or ds.y is None:
        raise DataError("fine-tuning needs labelled data ('y' in the .npz, or class folders)", path)
    return TrainingData(data.samples, ds.y)


def compressed_size(path: str) -> int:
    return len(zlib.compress(Path(path).read_bytes(), 6))


@dataclass(frozen=True, eq=False)
class _Inputs:
    verify_x: Samples
    calib_x: Samples
    calib_ds: Dataset | None
    train: TrainingData | None
    warnings: list[str]
    notes: tuple[str, ...] = ()


def optimize(model: str | os.PathLike, recipe: Recipe, out_dir: str | os.PathLike, *, calib: str | None = None,
             finetune: str | None = None, arch: ArchSpec | None = None, trust_pickle: bool = False,
             shapes: ShapeRequest = ShapeRequest(), scoring: Scoring = Scoring(), allow_degraded: bool = False,
             report: Report = ignore, cancel: CancelToken | None = None) -> dict:
    """Write OUT/model.onnx or OUT/model.tflite and OUT/report.json; returns the report."""
    started = time.monotonic()
    model = os.fspath(model)
    out_dir = Path(out_dir)
    warm_ahead(model, (recipe.target,))
    report(0.0, "inspecting the source model")
    info = inspect_source(model, arch=arch, trust_pickle=trust_pickle, shapes=shapes, data=calib, cancel=cancel)
    info.require_runnable(ConversionError, "cannot optimize a model its runtime refuses", model, runtimes_only=True)
    try:
        check_source(recipe, info.format, has_module(info), is_quantized(info))
    except RecipeError as exc:
        raise RecipeError(exc.message, model) from None
    inputs = _inputs(recipe, info, shapes, calib, finetune)
    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=out_dir))
    final_name = f"model.{BACKENDS[recipe.target].suffix}"
    request = StageRequest(model=model, info=info, recipe=recipe, inputs=inputs.calib_x.inputs,
                           verify_x=inputs.verify_x, calib_x=inputs.calib_x, work=work, train=inputs.train, arch=arch,
                           trust_pickle=trust_pickle, quant_modes=(recipe.quantization.mode,))
    sizes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compressed-size")  # zlib lets the workers run
    source_compressed = sizes.submit(_dir_or_file_compressed, info)
    try:
        stage = float_stage(request, report=scaled(report, 0.05, 0.56), cancel=cancel)
        second = finish(stage, request, str(work / final_name), report=scaled(report, 0.56, 0.9), cancel=cancel)
        report(0.92, "inspecting the result")
        result_compressed = sizes.submit(compressed_size, str(work / final_name))
        out_info = inspect_model(work / final_name, probe=False, cancel=cancel)  # _gate runs it: that is the probe
        out_info.require_runnable(ConversionError, "the result does not run")
        fidelity = _gate(request, stage, str(work / final_name), scoring, cancel, allow_degraded,
                         outputs=second.outputs)
        doc = _report(request, stage, second, out_info, inputs, calib=calib, final_name=final_name, started=started,
                      compressed=(source_compressed.result(), result_compressed.result()))
        doc["fidelity"] = fidelity
        os.replace(work / final_name, out_dir / final_name)
        atomic.write_json(out_dir / "report.json", doc)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if not existed and not any(out_dir.iterdir()):
            out_dir.rmdir()  # nothing of a failed run stays behind
        raise
    finally:
        sizes.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(work, ignore_errors=True)
    report(1.0, f"wrote {out_dir / final_name}")
    return doc


def _inputs(recipe: Recipe, info: ModelInfo, shapes: ShapeRequest, calib: str | None,
            finetune: str | None) -> _Inputs:
    """Calibration and verification inputs (synthetic without data), and fine-tuning data when it is due."""
    q, p = recipe.quantization, recipe.pruning
    warnings: list[str] = []
    count = max(q.calib_samples, VERIFY_SAMPLES)
    data = source_data(info, shapes, calib, recipe, count, synthetic_count=count)
    calib_x, calib_ds = data.samples, data.dataset
    if calib_ds is None and q.mode == QuantMode.INT8:
        warnings.append("no calibration data given: static int8 was calibrated on synthetic random inputs, so"
                        " its accuracy is likely much worse than with real samples (pass --calib DATA)")
    train = None
    if p.method == PruneMethod.STRUCTURED and p.finetune_epochs:
        if not finetune:
            warnings.append("fine-tuning was asked for but no training data was given (--finetune DATA): skipped")
        else:
            train = finetune_data(finetune, info, shapes, recipe)
    elif p.method == PruneMethod.STRUCTURED and not p.finetune_epochs:
        warnings.append("structured pruning without recovery fine-tuning loses accuracy; give --finetune DATA")
    return _Inputs(calib_x.head(VERIFY_SAMPLES), calib_x, calib_ds, train, warnings, data.notes)


def _gate(request: StageRequest, stage: FloatStage, result: str, scoring: Scoring, cancel: CancelToken | None,
          allow_degraded: bool, outputs: list | None = None) -> dict:
    """The result's fidelity to the source per output on the verification samples; ConversionError when the
    scoring output is below the quality gate (unless the user allows a degraded result), and when the result
    does not run at all (the only run check the result gets). `outputs`: the result's, where finishing it ran it."""
    from studio.core.measure.scores import score_outputs

    source = stage.convert.ref_before or run_job(reference_outputs, request.model, request.verify_x, cancel=cancel,
                                                 what="the source model", kind=backend_for_file(request.model).kind)
    try:
        got = outputs if outputs is not None else run_job(
            reference_outputs, result, request.verify_x, cancel=cancel, what="the result",
            kind=backend_for_file(result).kind)
    except Cancelled:
        raise
    except StudioError as exc:  # refused by its runtime, or crashed it: the worker's one line says which
        raise ConversionError(f"the result does not run: {exc.message}", request.model) from None
    gate = Scoring(output=scoring.output, floors=scoring.floors)  # fidelity only: no user code runs here
    scores = score_outputs(got, None, source, gate, [t.name for t in request.info.outputs])
    if scores.degraded and not allow_degraded:
        raise ConversionError(f"the result is degraded ({scores.degraded} against the source on"
                              f" {len(request.verify_x)} samples): nothing was written; pass --allow-degraded to keep"
                              " it anyway, or choose another recipe", request.model)
    return {"scoring_output": scores.scoring_output, "degraded": scores.degraded or None,
            "floors": {"agreement": gate.floors.agreement, "cosine": gate.floors.cosine,
                       "sqnr_db": gate.floors.sqnr_db},
            "outputs": [f.to_dict() for f in scores.fidelity], "samples": len(request.verify_x)}


def _report(request: StageRequest, stage: FloatStage, second: FinishResult, out_info: ModelInfo, inputs: _Inputs, *,
            calib: str | None, final_name: str, started: float, compressed: tuple[int | None, int]) -> dict:
    from studio.core.measure.verify import compare

    model, info, recipe = request.model, request.info, request.recipe
    first = stage.convert
    warnings = list(inputs.warnings)
    pruning_effect = second.pruning_effect
    if first.ref is not None and first.ref_before is not None and \
            recipe.pruning.method != PruneMethod.NONE and pruning_effect is None:
        pruning_effect = compare(first.ref_before, first.ref)
    if recipe.pruning.method == PruneMethod.UNSTRUCTURED:
        warnings.append("unstructured pruning only zeroes weights: the file compresses smaller (see"
                        " compressed_size_bytes) but onnxruntime and ai-edge-litert run it no faster")
    out_size = out_info.size_bytes
    calib_ds = inputs.calib_ds
    doc = {
        "schema_version": REPORT_VERSION,
        "source": {"path": str(model), "format": info.format, "sha256": source_digest(info.files),
                   "size_bytes": info.size_bytes, "params": info.params,
                   "macs": info.macs, "compressed_size_bytes": compressed[0],
                   **({"arch": request.arch.record()} if request.arch else {})},
        "output": {"path": final_name, "format": out_info.format, "size_bytes": out_size, "params": out_info.params,
                   "macs": _or(first.macs_after, out_info.macs),
                   "compressed_size_bytes": compressed[1],
                   "inputs": [t.__dict__ | {"quantization": t.quantization.__dict__ if t.quantization else None}
                              for t in out_info.inputs],
                   "weight_dtypes": out_info.weight_dtypes},
        "recipe": recipe.to_dict(),
        "conversion": {"route": stage.what, "check": second.conversion_check},
        "pruning_effect": pruning_effect,
        "quantization_effect": second.quantization_effect,
        "params_before": _or(first.params_before, info.params),
        "params_after": _or(first.params_after, out_info.params),
        "macs_before": _or(first.macs_before, info.macs),
        "steps": list(first.steps) + second.steps,
        "calibration": {"source": str(calib) if calib else "synthetic",
                        "samples": min(recipe.quantization.calib_samples, len(calib_ds) if calib_ds else 10 ** 9)}
        if recipe.quantization.mode == QuantMode.INT8 else None,
        "warnings": warnings,
        "notes": list(inputs.notes) + list(first.notes) + second.notes,
        "input_shapes": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "from": i.origin.value}
                         for i in inputs.calib_x.inputs],
        "time_s": round(time.monotonic() - started, 2),
        "versions": library_versions(),
        "host": host(),
    }
    doc["size_ratio"] = round(out_size / info.size_bytes, 4) if info.size_bytes else None
    return doc


def _or(counted: int | None, inspected: int | None) -> int | None:
    """The route's count where it took one, else the inspector's."""
    return counted if counted is not None else inspected


def _dir_or_file_compressed(info: ModelInfo) -> int | None:
    files = [f for f in info.files if os.path.isfile(f)]
    return sum(compressed_size(f) for f in files) if files else None
