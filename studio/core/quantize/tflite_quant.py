"""TFLite-side work, run in an ai-edge-litert worker: weight pruning of float buffers, quantization with
ai-edge-quantizer (dynamic, static int8, fp16) and the float conversion check."""
from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.core.base.errors import ConversionError, short
from studio.core.base.progress import Report, ignore
from studio.core.prune.weights import PruneStats, prune_arrays
from studio.core.quantize.backend import FinishRequest, FinishResult, result_outputs
from studio.core.tensors.samples import Samples

WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "BATCH_MATMUL": 1}


@dataclass(frozen=True, eq=False)
class FloatWeight:
    """A float32 weight tensor of a conv / fully-connected op in a TFLite flatbuffer."""
    buffer: int
    name: str  # the weight tensor's
    scope: str  # the op's first output tensor: the name ai-edge-quantizer's scopes and weighted_layers use
    op: str
    values: np.ndarray


def float_weights(path: str, model=None) -> list[FloatWeight]:
    """The float32 weights of the conv and fully-connected ops of `path` (or of the read `model`), one per
    buffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = model if model is not None else fbu.read_model(path)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    found: dict[int, FloatWeight] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            if name not in WEIGHT_OPS or len(op.inputs) <= WEIGHT_OPS[name]:
                continue
            tensor = sg.tensors[op.inputs[WEIGHT_OPS[name]]]
            data = model.buffers[tensor.buffer].data
            if tensor.type == schema.TensorType.FLOAT32 and data is not None and len(data) and \
                    tensor.buffer not in found:
                values = np.frombuffer(bytes(data), np.float32).reshape(tuple(tensor.shape))
                scope = tensor_name(sg.tensors[op.outputs[0]].name) if len(op.outputs) else tensor_name(tensor.name)
                found[tensor.buffer] = FloatWeight(tensor.buffer, tensor_name(tensor.name), scope, name, values)
    return list(found.values())


def prune_tflite(src: str, out: str, pruning) -> PruneStats:
    """Zero the smallest float32 weights of conv / fully-connected ops (per layer or globally), rewriting the
    flatbuffer."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(src)
    targets = float_weights(src, model)
    if not targets:
        raise ConversionError("the TFLite model has no float32 conv or fully-connected weights to prune", src)
    pruned, stats = prune_arrays([(w.name, w.values) for w in targets], pruning.ratio, pruning.scope)
    for w, a in zip(targets, pruned, strict=True):
        model.buffers[w.buffer].data = np.frombuffer(a.astype("<f4").tobytes(), np.uint8)
    fbu.write_model(model, out)
    return stats


def tensor_name(raw) -> str:
    """A flatbuffer tensor name as text (the schema gives bytes)."""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def weighted_layers(path: str) -> list[tuple[str, str]]:
    """(scope name, op) of the ops with weights; ai-edge-quantizer matches its regexes against these names."""
    from studio.core.inspect.tflite_model import inspect_tflite

    return [(layer.name, layer.op) for layer in inspect_tflite(path).layers if layer.op in WEIGHT_OPS]


def quantize(float_path: str, out: str, q, calib_x: Samples, exclude: Sequence[str] = (),
             only: Sequence[str] | None = None) -> None:
    """Quantize with ai-edge-quantizer; `exclude` keeps those layers in float, `only` quantizes just those."""
    import re

    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from studio.core.recipe.recipe import QuantMode

    granularity = qtyping.QuantGranularity.CHANNELWISE if q.per_channel else qtyping.QuantGranularity.TENSORWISE
    manager = recipe_manager.RecipeManager()
    ops = qtyping.TFLOperationName.ALL_SUPPORTED
    if q.mode == QuantMode.DYNAMIC:
        rec = recipe.dynamic_wi8_afp32()
    elif q.mode == QuantMode.FP16:
        manager.add_weight_only_config(regex=".*", operation_name=ops, num_bits=16,
                                       algorithm_key=AlgorithmName.FLOAT_CASTING)
    else:
        # ai-edge-quantizer matches against the op scope: its output tensor names, each followed by ";"
        for scope in ([f"^{re.escape(n)};" for n in only] if only is not None else [".*"]):
            manager.add_static_config(regex=scope, operation_name=ops, activation_num_bits=8, weight_num_bits=8,
                                      weight_granularity=granularity)
    if q.mode != QuantMode.DYNAMIC:
        for name in exclude:  # the latest matching scope wins: these layers stay float
            manager.add_quantization_config(regex=f"^{re.escape(name)};", operation_name=ops,
                                            algorithm_key=AlgorithmName.NO_QUANTIZE)
        rec = manager.get_quantization_recipe()
    qt = quantizer.Quantizer(float_path, rec)
    calibration = None
    if qt.need_calibration:
        sigs = Interpreter(model_path=float_path).get_signature_list()
        key = next(iter(sigs))
        from studio.core.measure.runtimes import named_feeds

        details = Interpreter(model_path=float_path).get_signature_runner(key).get_input_details()
        dtypes = {name: np.dtype(d["dtype"]) for name, d in details.items()}
        calibration = qt.calibrate({key: named_feeds(list(sigs[key]["inputs"]), calib_x, q.calib_samples, dtypes)},
                                   num_threads=1)
    qt.quantize(calibration, enable_progress_report=False).export_model(out, overwrite=True)


def finish_tflite(request: FinishRequest, report: Report = ignore) -> FinishResult:
    """Prune, check the float model against `ref`, quantize (unless done already), compare with the float."""
    from studio.core.measure.runtimes import TfliteRunner, predict
    from studio.core.measure.verify import check_float, compare
    from studio.core.recipe.recipe import QuantMode

    warnings.simplefilter("ignore")
    r, recipe = request, request.recipe
    steps: list[dict[str, Any]] = []
    ref = r.ref
    if ref is None:  # the source itself is this TFLite file
        ref = predict(TfliteRunner(r.float_path), r.verify_x)
    checked = r.float_path
    if r.prune:
        t = time.monotonic()
        checked = r.out + ".float.tflite"
        stats = prune_tflite(r.float_path, checked, recipe.pruning)
        steps.append(stats.step(recipe.pruning.ratio, time.monotonic() - t))
    report(0.3, "checking the float model")
    got = predict(TfliteRunner(checked), r.verify_x)
    pruning_effect, quantization_effect = None, None
    if r.prune:
        pruning_effect = compare(ref, got)
        check = {"passed": True, "note": "pruned weights: compared in pruning_effect"}
    else:
        check = check_float(ref, got, r.check_what, r.float_path)
    q = recipe.quantization
    if r.quantized_path:  # quantized by TFLiteConverter already (Keras sources)
        shutil.copy(r.quantized_path, r.out)
    elif q.mode == QuantMode.NONE:
        shutil.copy(checked, r.out)
    else:
        report(0.5, f"quantizing ({q.mode}) with ai-edge-quantizer")
        t = time.monotonic()
        try:
            quantize(checked, r.out, q, r.calib_x)
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f"ai-edge-quantizer could not quantize the model ({q.mode}):"
                                  f" {short(exc, 200)}") from None
        steps.append({"name": f"ai-edge-quantizer ({q.mode})", "seconds": round(time.monotonic() - t, 2)})
    notes: list[str] = []
    if q.mode == QuantMode.FP16:
        report(0.8, "checking fp16 against the float model")
        notes += _checked_fp16(checked, got, r)
    outputs = got  # a float result is the checked file itself
    if q.mode != QuantMode.NONE:
        outputs = result_outputs(TfliteRunner, r.out, r.verify_x)
        quantization_effect = compare(got, outputs)
    report(1.0, "done")
    return FinishResult(float_path=checked, steps=steps, notes=notes, conversion_check=check,
                        pruning_effect=pruning_effect, quantization_effect=quantization_effect, outputs=outputs)


def _checked_fp16(float_path: str, float_outputs: list[np.ndarray], r: FinishRequest) -> list[str]:
    """The notes of the fp16 check (and retry) of `r.out`."""
    from studio.core.quantize.tflite_fp16 import checked_fp16

    converter = "TFLiteConverter" if r.quantized_path else "ai-edge-quantizer"
    try:
        return checked_fp16(float_path, r.out, float_outputs, r.verify_x, r.recipe.quantization, converter).notes()
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"ai-edge-quantizer could not make fp16 again with ops kept in float32:"
                              f" {short(exc, 200)}") from None
