"""The two steps every optimization takes: the float stage (convert, and prune, to the target in float: shared by
every quantization mode of one target and pruning) and the finish (check, prune weights, quantize)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from studio.core.base.errors import StudioError
from studio.core.base.jobs import run_job
from studio.core.base.pool import POOL, WorkerKind
from studio.core.base.progress import CancelToken, Report, ignore
from studio.core.convert.request import ConvertRequest
from studio.core.convert.result import ConvertResult
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.formats import Framework, detect
from studio.core.inspect.modelinfo import ModelInfo
from studio.core.quantize.backend import BACKENDS, FinishRequest, FinishResult
from studio.core.recipe.recipe import PruneMethod, QuantMode, Recipe, Target
from studio.core.tensors.samples import Samples, TrainingData
from studio.core.tensors.shapes import InputShape

TORCH, TENSORFLOW = WorkerKind.TORCH, WorkerKind.TENSORFLOW
ONNXRUNTIME, LITERT = WorkerKind.ONNXRUNTIME, WorkerKind.LITERT


@dataclass(frozen=True, eq=False)
class StageRequest:
    """A source model and what its float stage needs."""
    model: str
    info: ModelInfo
    recipe: Recipe
    inputs: tuple[InputShape, ...]  # the source's inputs at the shapes they run at
    verify_x: Samples
    calib_x: Samples
    work: Path  # where the float model (and TFLiteConverter's quantized models) go
    train: TrainingData | None = None
    arch: ArchSpec | None = None
    trust_pickle: bool = False
    quant_modes: tuple[QuantMode, ...] = ()  # Keras to TFLite: the modes TFLiteConverter quantizes for


@dataclass(frozen=True, eq=False)
class FloatStage:
    """The float model of one (target, pruning) group, with what finishing each of its candidates needs."""
    what: str  # the route, e.g. "PyTorch -> ONNX"
    float_path: str
    ref: list[np.ndarray] | None  # the source's outputs on verify_x (after pruning); None: the source is float_path
    prune_in_finish: bool  # weights are pruned in the finish step (the converter could not reach them)
    quantized: Mapping[QuantMode, str] = field(default_factory=dict)  # {quant mode: path} quantized by TFLiteConverter
    modes: tuple[QuantMode, ...] = ()  # the quantization modes this stage was made for
    convert: ConvertResult = field(default_factory=ConvertResult)  # the route's record: steps, notes, counts

    def serves(self, modes: tuple[QuantMode, ...]) -> bool:
        return set(modes) <= set(self.modes) and Path(self.float_path).exists()

    def summary(self) -> FloatStage:
        """The stage without the converter's arrays, as a sweep keeps it: its steps are all it reads again."""
        return replace(self, convert=ConvertResult(steps=self.convert.steps))

    def finish_request(self, recipe: Recipe, verify_x: Samples, calib_x: Samples, out: str, *,
                       source_framework: Framework) -> FinishRequest:
        return FinishRequest(float_path=self.float_path, out=out, recipe=recipe, ref=self.ref, verify_x=verify_x,
                             calib_x=calib_x, prune=self.prune_in_finish, check_what=self.what,
                             convert_opset=source_framework == Framework.ONNX,
                             quantized_path=self.quantized.get(recipe.quantization.mode))


def workers_for(framework: Framework, targets: Iterable[Target]) -> tuple[WorkerKind, ...]:
    """The warm workers optimizing a model of this framework to these targets uses: its own framework's (load,
    convert, reference), each target's runtime (check, quantize, evaluate), and the converters between them."""
    kinds = [framework.worker_kind]
    for target in targets:
        if framework == Framework.ONNX and target == Target.TFLITE:
            kinds.append(TORCH)  # onnx2torch and litert-torch
        elif framework == Framework.TFLITE and target == Target.ONNX:
            kinds.append(TENSORFLOW)  # tf2onnx
        kinds.append(BACKENDS[target].kind)
    return tuple(dict.fromkeys(kinds))


def warm_ahead(path: str, targets: Iterable[Target]) -> None:
    """Start, in the background, the workers an optimize of this file needs after its own framework's (which its
    inspection starts): their imports then overlap the source's conversion instead of following it."""
    try:
        framework = detect(path).framework
    except StudioError:
        return  # the inspection says what is wrong with the file
    POOL.warm_in_background(k for k in workers_for(framework, targets) if k != framework.worker_kind)


def reference_outputs(path: str, x: Samples, report=ignore) -> list[np.ndarray]:
    """Outputs of an ONNX or TFLite source on its samples (run in a runtime worker)."""
    from studio.core.measure.runtimes import open_runner, predict

    return predict(open_runner(path), x)


def float_stage(request: StageRequest, *, report: Report = ignore, cancel: CancelToken | None = None) -> FloatStage:
    """Convert (and prune) the source to a float model of the recipe's target: the part every quantization mode of
    the same target and pruning shares. Returns the float path, reference outputs on verify_x, and (for Keras to
    TFLite) models already quantized by TFLiteConverter for `quant_modes`."""
    from studio.core.convert.onnx_route import onnx_to_tflite
    from studio.core.convert.tf_route import keras_stage, tflite_to_onnx
    from studio.core.convert.torch_route import torch_stage

    r, fw, target = request, request.info.framework, request.recipe.target
    backend = BACKENDS[target]
    floated = str(r.work / f"converted.{backend.suffix}")
    what = f"{fw.display_name} -> {Framework(backend.suffix).display_name}"
    counted = _counted_at(r.info, r.inputs)
    convert = ConvertRequest(src=r.model, fmt=r.info.format, recipe=r.recipe, verify_x=r.verify_x, out=floated,
                             arch=r.arch, trust_pickle=r.trust_pickle, inputs=r.inputs, train=r.train,
                             calib_x=r.calib_x, params=r.info.params if counted else None,
                             macs=r.info.macs if counted else None)

    def job(fn, *args, name, kind, rep=ignore):
        return run_job(fn, *args, report=rep, cancel=cancel, what=name, kind=kind)

    if fw == Framework.PYTORCH:
        first = job(torch_stage, convert, rep=report, name="the PyTorch converter", kind=TORCH)
        stage = FloatStage(what, floated, first.ref, first.prune_later, convert=first)
    elif fw in (Framework.KERAS, Framework.TENSORFLOW):
        modes = [m for m in r.quant_modes if m != QuantMode.NONE] if backend.suffix == "tflite" else []
        quantized: dict[QuantMode, str] = {m: str(r.work / f"quantized-{m}.tflite") for m in modes}
        first = job(keras_stage, replace(convert, quantized=quantized), rep=report, name="the TensorFlow converter",
                    kind=TENSORFLOW)
        stage = FloatStage(what, floated, first.ref, False, quantized=first.quantized, convert=first)
    elif fw == target:  # ONNX -> ONNX or TFLite -> TFLite: the finishing step works on the source itself
        stage = FloatStage(what, r.model, None, r.recipe.pruning.method == PruneMethod.UNSTRUCTURED)
    elif fw == Framework.ONNX:  # -> TFLite
        ref = job(reference_outputs, r.model, r.verify_x, name="onnxruntime", kind=ONNXRUNTIME)
        first = job(onnx_to_tflite, r.model, r.inputs, floated, rep=report, name="the ONNX -> TFLite converter",
                    kind=TORCH)
        stage = FloatStage(what, floated, ref, r.recipe.pruning.method == PruneMethod.UNSTRUCTURED, convert=first)
    else:  # TFLite -> ONNX
        ref = job(reference_outputs, r.model, r.verify_x, name="ai-edge-litert", kind=LITERT)
        first = job(tflite_to_onnx, r.model, r.recipe.runtime.opset, floated, rep=report, name="tf2onnx",
                    kind=TENSORFLOW)
        stage = FloatStage(what, floated, ref, r.recipe.pruning.method == PruneMethod.UNSTRUCTURED, convert=first)
    if stage.convert.ref_before is None:  # a route that does not prune: the outputs before are the stage's own
        stage = replace(stage, convert=replace(stage.convert, ref_before=stage.ref))
    return replace(stage, modes=tuple(r.quant_modes))


def _counted_at(info: ModelInfo, inputs: tuple[InputShape, ...]) -> bool:
    """Whether the inspector's MACs were counted at exactly these run shapes (it counts a dynamic dim as 1, as
    the resolved inputs have it at batch 1), so the converter can take them instead of counting again."""
    if info.macs is None or len(info.inputs) != len(inputs):
        return False
    at = {t.name: [d if isinstance(d, int) else 1 for d in t.shape] for t in info.inputs}
    return all(at.get(i.name) == list(i.shape) for i in inputs)


def finish(stage: FloatStage, request: StageRequest, out: str, *, report: Report = ignore,
           cancel: CancelToken | None = None) -> FinishResult:
    """Check the float model against the source, prune weights if due, quantize: the per-candidate step."""
    backend = BACKENDS[request.recipe.target]
    job = stage.finish_request(request.recipe, request.verify_x, request.calib_x, out,
                               source_framework=request.info.framework)
    try:
        return run_job(backend.finish, job, report=report, cancel=cancel, what=backend.runtime, kind=backend.kind)
    except StudioError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(exc.message, request.model) from None  # the one line names the model being optimized
