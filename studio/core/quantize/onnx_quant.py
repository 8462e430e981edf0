"""ONNX-side work, run in an onnxruntime worker: opset normalization, weight pruning, quantization
(onnxruntime.quantization: dynamic, static QDQ; onnxconverter-common: fp16) and the float conversion check."""
from __future__ import annotations

import logging
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base.errors import ConversionError, short
from studio.core.base.progress import Report, ignore
from studio.core.convert.onnx_graph import constants_to_initializers
from studio.core.prune.weights import PruneStats, prune_arrays
from studio.core.quantize.backend import FinishRequest, FinishResult, result_outputs
from studio.core.tensors.samples import Samples

QUANT_MIN_OPSET = 13  # per-channel QuantizeLinear needs opset 13
WEIGHTED_NODES = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def normalize(model, opset: int | None, notes: list[str]):
    """Convert to `opset` (when given and different), give the model the IR version that opset needs, drop
    initializers from graph inputs (old IR style) and flatten [1, N] Gemm biases that trip the quantizer."""
    import onnx
    current = _opset(model)
    if opset and opset != current:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"onnx could not convert the model from opset {current} to {opset}:"
                                  f" {short(exc, 160)}") from None
        notes.append(f"converted from opset {current} to opset {opset}")
    model.ir_version = max(model.ir_version, onnx.helper.find_min_ir_version_for(list(model.opset_import),
                                                                                 ignore_unknown=True))
    constants_to_initializers(model, notes)
    inits = {t.name: t for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)
    flatten_gemm_biases(model)
    return model


def flatten_gemm_biases(model) -> None:
    """Reshape Gemm biases [1, N] to [N]: onnxruntime 1.31's int32-bias check fails on 2-D biases."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    changed = set()
    for node in model.graph.node:
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] in inits:
            bias = inits[node.input[2]]
            if len(bias.dims) == 2 and bias.dims[0] == 1:
                bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias).reshape(-1), bias.name))
                changed.add(bias.name)
    for v in [v for v in model.graph.value_info if v.name in changed]:
        model.graph.value_info.remove(v)


def _weights_of(node, inits) -> list[str]:
    """The float weight initializers (2-D or more) a Conv / ConvTranspose / Gemm / MatMul node multiplies by."""
    slots = node.input[:2] if node.op_type == "MatMul" else node.input[1:2]
    return [n for n in slots if n in inits and inits[n].data_type == 1 and len(inits[n].dims) >= 2]


def prune_model(model, pruning) -> PruneStats:
    """Zero the smallest weights of Conv, ConvTranspose, Gemm and MatMul initializers, per layer or globally."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    layers: dict[str, str] = {}  # initializer -> the layer it is reported as
    for node in model.graph.node:
        if node.op_type in WEIGHTED_NODES:
            for name in _weights_of(node, inits):
                layers.setdefault(name, node.name or name)
    if not layers:
        raise ConversionError("the ONNX model has no float Conv/Gemm/MatMul weights to prune")
    named = [(layer, numpy_helper.to_array(inits[n])) for n, layer in layers.items()]
    pruned, stats = prune_arrays(named, pruning.ratio, pruning.scope)
    for n, a in zip(layers, pruned, strict=True):
        inits[n].CopyFrom(numpy_helper.from_array(a.astype(np.float32), n))
    return stats


class _Reader:
    """onnxruntime.quantization's calibration data interface over the samples, one run per call."""

    def __init__(self, path: str, samples: Samples, count: int):
        from studio.core.measure.runtimes import OnnxRunner, named_feeds

        runner = OnnxRunner(path)
        names = [i.name for i in runner.inputs]
        self._it = iter([{n: spec.encode(v) for spec, (n, v) in zip(runner.inputs, run.items(), strict=True)}
                         for run in named_feeds(names, samples, count)])

    def get_next(self):
        return next(self._it, None)


def quantize(float_path: str, out: str, q, calib_x: Samples, *, work: Path, notes: list[str],
             exclude: Sequence[str] = (), only: Sequence[str] | None = None) -> None:
    """Quantize with onnxruntime; `exclude` keeps those nodes in float, `only` quantizes just those nodes."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    from studio.core.recipe.recipe import CalibMethod, QuantMode

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice at WARNING for every model
    if q.mode == QuantMode.FP16:
        from studio.core.quantize.onnx_fp16 import to_fp16

        notes.extend(to_fp16(float_path, out, calib_x).notes())
        return
    pre = str(work / "preprocessed.onnx")
    pre_process(float_path, pre, notes)
    nodes = list(only) if only is not None else None
    if q.mode == QuantMode.DYNAMIC:
        quantize_dynamic(pre, out, per_channel=q.per_channel, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(exclude), nodes_to_quantize=nodes)
        return
    method = {CalibMethod.MINMAX: CalibrationMethod.MinMax, CalibMethod.ENTROPY: CalibrationMethod.Entropy,
              CalibMethod.PERCENTILE: CalibrationMethod.Percentile}[q.calibration]
    quantize_static(pre, out, _Reader(pre, calib_x, q.calib_samples), quant_format=QuantFormat.QDQ,
                    per_channel=q.per_channel, calibrate_method=method, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude), nodes_to_quantize=nodes)


def pre_process(float_path: str, pre: str, notes: list[str]) -> None:
    """onnxruntime's pre-processing, as the quantizer sees the model (its node names are what `exclude` names)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(float_path, pre, skip_symbolic_shape=False)
    except Exception as exc:  # noqa: BLE001 - pre-processing is an optimization; quantize the float model instead
        shutil.copy(float_path, pre)
        notes.append(f"onnxruntime pre-processing failed ({short(exc, 100)}); quantized without it")
    model = onnx.load(pre)  # pre-processing fuses MatMul+Add into Gemm, which can bring back [1, N] biases
    flatten_gemm_biases(model)
    onnx.save(model, pre)


def weighted_layers(path: str) -> list[tuple[str, str]]:
    """(name, op) of the nodes that carry weights: the layers a user can keep in float."""
    import onnx

    return [(n.name, n.op_type) for n in onnx.load(path, load_external_data=False).graph.node
            if n.op_type in WEIGHTED_NODES and n.name]


def finish_onnx(request: FinishRequest, report: Report = ignore) -> FinishResult:
    """Normalize, prune, check the float model against `ref`, quantize, and compare the result with the float."""
    import onnx

    from studio.core.measure.runtimes import OnnxRunner, predict
    from studio.core.measure.verify import check_float, compare
    from studio.core.recipe.recipe import QuantMode

    warnings.simplefilter("ignore")
    r, recipe = request, request.recipe
    work = Path(r.out).parent
    steps: list[dict[str, Any]] = []
    notes: list[str] = []
    ref = r.ref
    if ref is None:  # the source itself is this ONNX file
        ref = predict(OnnxRunner(r.float_path), r.verify_x)
    model = onnx.load(r.float_path)
    q = recipe.quantization
    opset = recipe.runtime.opset if r.convert_opset else None
    if q.mode in (QuantMode.DYNAMIC, QuantMode.INT8) and max(_opset(model), opset or 0) < QUANT_MIN_OPSET:
        opset = QUANT_MIN_OPSET
        notes.append(f"opset {_opset(model)} cannot hold per-channel quantization: raised to {QUANT_MIN_OPSET}")
    t = time.monotonic()
    model = normalize(model, opset, notes)
    if r.prune:
        steps.append(prune_model(model, recipe.pruning).step(recipe.pruning.ratio, time.monotonic() - t))
    normalized = str(work / "float.onnx")
    onnx.save(model, normalized)
    report(0.3, "checking the float model")
    got = predict(OnnxRunner(normalized), r.verify_x)
    pruning_effect, quantization_effect = None, None
    if r.prune:  # pruning changes outputs on purpose: report the effect, check nothing
        pruning_effect = compare(ref, got)
        check = {"passed": True, "note": "pruned weights: compared in pruning_effect"}
    else:
        check = check_float(ref, got, r.check_what, r.float_path)
    outputs = got  # a float result is the checked file itself
    if q.mode == QuantMode.NONE:
        shutil.copy(normalized, r.out)
    else:
        report(0.5, f"quantizing ({q.mode}) with onnxruntime")
        steps.append(_quantize_step(normalized, r.out, q, r.calib_x, notes))
        outputs = result_outputs(OnnxRunner, r.out, r.verify_x)
        quantization_effect = compare(got, outputs)
    report(1.0, "done")
    return FinishResult(float_path=normalized, steps=steps, notes=notes, conversion_check=check,
                        pruning_effect=pruning_effect, quantization_effect=quantization_effect, outputs=outputs)


def _quantize_step(normalized: str, out: str, q, calib_x: Samples, notes: list[str]) -> dict[str, Any]:
    from studio.core.recipe.recipe import QuantMode

    t = time.monotonic()
    try:
        quantize(normalized, out, q, calib_x, work=Path(out).parent, notes=notes)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"onnxruntime could not quantize the model ({q.mode}): {short(exc, 200)}") from None
    return {"name": f"onnxruntime quantization ({q.mode}"
                    + (f", {q.calibration}, {'per-channel' if q.per_channel else 'per-tensor'})"
                       if q.mode == QuantMode.INT8 else ")"),
            "seconds": round(time.monotonic() - t, 2)}
