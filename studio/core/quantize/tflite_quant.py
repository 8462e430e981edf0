"""TFLite-side work, run in an ai-edge-litert worker: weight pruning of float buffers, quantization with
ai-edge-quantizer (dynamic, static int8, fp16) and the float conversion check."""
from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from studio.core.base.errors import ConversionError, short
from studio.core.base.progress import Report, ignore
from studio.core.prune.weights import PruneStats, prune_arrays
from studio.core.quantize.backend import FinishRequest, FinishResult
from studio.core.quantize.floor import shortfall
from studio.core.tensors.samples import Samples

WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "BATCH_MATMUL": 1}


def prune_tflite(src: str, out: str, pruning) -> PruneStats:
    """Zero the smallest float32 weights of conv / fully-connected ops (per layer or globally), rewriting the
    flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(src)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    targets: list[tuple[int, tuple[int, ...], str]] = []
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            if name in WEIGHT_OPS and len(op.inputs) > WEIGHT_OPS[name]:
                tensor = sg.tensors[op.inputs[WEIGHT_OPS[name]]]
                buf = model.buffers[tensor.buffer]
                is_float = tensor.type == schema.TensorType.FLOAT32 and buf.data is not None and len(buf.data)
                if is_float and tensor.buffer not in [b for b, _, _ in targets]:
                    targets.append((tensor.buffer, tuple(tensor.shape), _name(tensor.name)))
    if not targets:
        raise ConversionError("the TFLite model has no float32 conv or fully-connected weights to prune", src)
    named = [(name, np.frombuffer(bytes(model.buffers[b].data), np.float32).reshape(s)) for b, s, name in targets]
    pruned, stats = prune_arrays(named, pruning.ratio, pruning.scope)
    for (b, _, _), a in zip(targets, pruned, strict=True):
        model.buffers[b].data = np.frombuffer(a.astype("<f4").tobytes(), np.uint8)
    fbu.write_model(model, out)
    return stats


def _name(raw) -> str:
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
        rec = manager.get_quantization_recipe()
    else:
        # ai-edge-quantizer matches against the op scope: its output tensor names, each followed by ";"
        for scope in ([f"^{re.escape(n)};" for n in only] if only is not None else [".*"]):
            manager.add_static_config(regex=scope, operation_name=ops, activation_num_bits=8, weight_num_bits=8,
                                      weight_granularity=granularity)
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
    if q.mode != QuantMode.NONE:
        quantization_effect = compare(got, predict(TfliteRunner(r.out), r.verify_x))
        reason = shortfall(quantization_effect) if q.mode == QuantMode.FP16 else None
        if reason:
            notes.append(f"fp16 output is degraded against the float model: {reason}")
    report(1.0, "done")
    return FinishResult(float_path=checked, steps=steps, notes=notes, conversion_check=check,
                        pruning_effect=pruning_effect, quantization_effect=quantization_effect)
