"""One backend per target behind a Protocol: what finishing (check, prune weights, quantize) needs and returns,
and the table `BACKENDS` keyed by Target that optimize and the sweep look a target up in."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from studio.core.base.pool import WorkerKind
from studio.core.base.progress import Report, ignore
from studio.core.recipe.recipe import Quantization, Recipe, Target
from studio.core.tensors.samples import Samples


@dataclass(frozen=True, eq=False)
class FinishRequest:
    """The float model of one (target, pruning) group, and what to make of it for one recipe."""
    float_path: str
    out: str
    recipe: Recipe
    ref: list[np.ndarray] | None  # the source's outputs on verify_x; None when the source is this float file
    verify_x: Samples
    calib_x: Samples
    prune: bool  # prune weights here (unstructured pruning the converter could not do)
    check_what: str  # the route, as the float check names it
    convert_opset: bool = False  # ONNX: the source is ONNX itself, so bring it to the recipe's opset
    quantized_path: str | None = None  # TFLite: already quantized by TFLiteConverter (Keras sources)


@dataclass(frozen=True, eq=False)
class FinishResult:
    float_path: str  # the checked float model (pruned when pruning was due), for accuracy-aware re-quantization
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conversion_check: dict[str, Any] | None = None
    pruning_effect: dict[str, Any] | None = None
    quantization_effect: dict[str, Any] | None = None
    outputs: list[np.ndarray] | None = None  # the finished file's outputs on verify_x: the run that shows it runs


def result_outputs(open_runner, path: str, x: Samples) -> list[np.ndarray]:
    """The finished model's outputs on the verification samples; ConversionError "the result does not run: ..."
    when its runtime refuses or fails it."""
    from studio.core.base.errors import ConversionError, StudioError, short
    from studio.core.measure.runtimes import predict

    try:
        return predict(open_runner(path), x)
    except StudioError as exc:
        raise ConversionError(f"the result does not run: {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - runtimes raise private types while running
        raise ConversionError(f"the result does not run: {short(exc)}") from None


class TargetBackend(Protocol):
    suffix: str  # the model file's suffix, and the name of the format
    runtime: str  # the worker that runs it, as errors name it
    kind: WorkerKind  # the warm worker its jobs run on

    def finish(self, request: FinishRequest, report: Report = ignore) -> FinishResult: ...

    def quantize(self, float_path: str, out: str, q: Quantization, calib_x: Samples, *,
                 exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None: ...

    def weighted_layers(self, path: str) -> list[tuple[str, str]]: ...


class OnnxBackend:
    suffix, runtime, kind = "onnx", "onnxruntime", WorkerKind.ONNXRUNTIME

    def finish(self, request: FinishRequest, report: Report = ignore) -> FinishResult:
        from studio.core.quantize.onnx_quant import finish_onnx

        return finish_onnx(request, report=report)

    def quantize(self, float_path: str, out: str, q: Quantization, calib_x: Samples, *,
                 exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
        from studio.core.quantize.onnx_quant import quantize

        quantize(float_path, out, q, calib_x, work=Path(out).parent, notes=[], exclude=exclude, only=only)

    def weighted_layers(self, path: str) -> list[tuple[str, str]]:
        from studio.core.quantize.onnx_quant import weighted_layers

        return weighted_layers(path)


class TfliteBackend:
    suffix, runtime, kind = "tflite", "ai-edge-litert", WorkerKind.LITERT

    def finish(self, request: FinishRequest, report: Report = ignore) -> FinishResult:
        from studio.core.quantize.tflite_quant import finish_tflite

        return finish_tflite(request, report=report)

    def quantize(self, float_path: str, out: str, q: Quantization, calib_x: Samples, *,
                 exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
        from studio.core.quantize.tflite_quant import quantize

        quantize(float_path, out, q, calib_x, exclude=exclude, only=only)

    def weighted_layers(self, path: str) -> list[tuple[str, str]]:
        from studio.core.quantize.tflite_quant import weighted_layers

        return weighted_layers(path)


BACKENDS: dict[Target, TargetBackend] = {Target.ONNX: OnnxBackend(), Target.TFLITE: TfliteBackend()}


def backend_for_file(path: str) -> TargetBackend:
    """The backend of a float model file, by its suffix."""
    return BACKENDS[Target.ONNX if path.endswith(".onnx") else Target.TFLITE]
