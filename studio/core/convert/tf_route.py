"""TensorFlow-side work, run in a TensorFlow worker process: Keras / SavedModel -> TFLite (TFLiteConverter, with
its quantization) and -> ONNX (tf2onnx), and TFLite -> ONNX (tf2onnx)."""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from studio.core.base.errors import ConversionError, short
from studio.core.base.progress import ignore
from studio.core.convert.request import ConvertRequest
from studio.core.convert.result import ConvertResult
from studio.core.prune.weights import PruneStats, prune_arrays
from studio.core.recipe.recipe import QuantMode
from studio.core.tensors.samples import Samples, gather


def _load(src: str, fmt: str):
    import tensorflow as tf

    from studio.core.inspect.keras_model import load_keras

    if fmt == "savedmodel":
        loaded = tf.saved_model.load(src)
        sigs = dict(loaded.signatures)
        fn = sigs.get("serving_default") or next(iter(sigs.values()), None)
        if fn is None:
            raise ConversionError("the SavedModel has no signature to convert", src)
        return None, fn
    return load_keras(src), None


def _call(model, fn, samples: Samples) -> list[np.ndarray]:
    """The Keras model's (or SavedModel signature's) outputs on every sample, at the resolved shapes."""
    if model is not None:
        def call(feeds):
            out = model(feeds if len(feeds) > 1 else feeds[0], training=False)
            return [np.asarray(o, np.float32) for o in (out if isinstance(out, (list, tuple)) else [out])]
        return gather(samples, call)
    specs = list(fn.structured_input_signature[1].items())

    def call_fn(feeds):
        res = fn(**{name: np.asarray(f).astype(spec.dtype.as_numpy_dtype) for (name, spec), f in
                    zip(specs, feeds, strict=True)})
        return [np.asarray(res[k], np.float32) for k in sorted(res)]
    return gather(samples, call_fn)


KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")  # Conv*, Dense, DepthwiseConv2D, SeparableConv*


def _prune_keras(model, pruning) -> PruneStats:
    """Zero the smallest weights of every kernel (SeparableConv2D has two), per layer or globally."""
    seen: dict[str, Any] = {}
    for layer in model._flatten_layers():
        for v in layer.weights:
            if v.name in KERNELS and v.dtype in ("float32", "float16", "float64"):
                seen.setdefault(v.path, v)
    if not seen:
        raise ConversionError("the model has no kernels (Dense/Conv) to prune")
    pruned, stats = prune_arrays([(path, np.asarray(v.numpy())) for path, v in seen.items()], pruning.ratio,
                                 pruning.scope)
    for v, k in zip(seen.values(), pruned, strict=True):
        v.assign(k)
    return stats


def _converter(model, fn, src):
    import tensorflow as tf

    if model is not None:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn])


def keras_stage(request: ConvertRequest, report=ignore) -> ConvertResult:
    """Prune (unstructured) and convert a Keras model; for TFLite targets also quantize with TFLiteConverter into
    `request.quantized` ({mode: path}), so one loaded model serves every quantization mode."""
    import tensorflow as tf

    from studio.core.recipe.recipe import PruneMethod, Target

    warnings.simplefilter("ignore")
    tf.keras.utils.set_random_seed(0)
    src, recipe, verify_x = request.src, request.recipe, request.verify_x
    model, fn = _load(src, request.fmt)
    steps: list[dict[str, Any]] = []
    ref_before = _call(model, fn, verify_x)
    if recipe.pruning.method == PruneMethod.UNSTRUCTURED:
        if model is None:
            raise ConversionError("unstructured pruning of a SavedModel needs its Keras model; open the .keras file",
                                  src)
        t = time.monotonic()
        stats = _prune_keras(model, recipe.pruning)
        steps.append(stats.step(recipe.pruning.ratio, time.monotonic() - t))
    ref = _call(model, fn, verify_x)
    quantized: dict[QuantMode, str] = {}
    report(0.3, f"converting to {recipe.target} in float")
    t = time.monotonic()
    if recipe.target == Target.TFLITE:
        with open(request.out, "wb") as fh:
            fh.write(_converter(model, fn, src).convert())
        steps.append({"name": "TFLiteConverter (float)", "seconds": round(time.monotonic() - t, 2)})
        quantized = {mode: _tflite_quantized(model, fn, request, mode, path, steps=steps, report=report)
                     for mode, path in request.quantized.items()}
    else:
        _to_onnx(model, fn, request)
        steps.append({"name": f"tf2onnx from_function (opset {recipe.runtime.opset})",
                      "seconds": round(time.monotonic() - t, 2)})
    params = int(model.count_params()) if model is not None else None
    return ConvertResult(steps=tuple(steps), ref=ref, ref_before=ref_before, quantized=quantized,
                         params_before=params, params_after=params)


def _tflite_quantized(model, fn, request: ConvertRequest, mode: QuantMode, out: str, *, steps: list[dict[str, Any]],
                      report) -> str:
    """Quantize with TFLiteConverter into `out`; returns `out`."""
    import tensorflow as tf

    q, calib_x = request.recipe.quantization, request.calib_x
    report(0.6, f"quantizing ({mode}) with TFLiteConverter")
    t = time.monotonic()
    conv = _converter(model, fn, request.src)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == QuantMode.FP16:
        conv.target_spec.supported_types = [tf.float16]
    elif mode == QuantMode.INT8:
        if calib_x is None:
            raise ConversionError("static int8 needs calibration inputs", request.src)

        def representative():
            for i in range(min(len(calib_x), q.calib_samples)):
                yield calib_x.sample(i)
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv._experimental_disable_per_channel = not q.per_channel
        if q.io == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    try:
        data = conv.convert()
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"TFLiteConverter could not quantize the model ({mode}): {short(exc, 200)}",
                              request.src) from None
    with open(out, "wb") as fh:
        fh.write(data)
    steps.append({"name": f"TFLiteConverter quantization ({mode})", "seconds": round(time.monotonic() - t, 2)})
    return out


def _to_onnx(model, fn, request: ConvertRequest) -> None:
    import tensorflow as tf
    import tf2onnx

    if model is not None:
        specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
        func = tf.function(lambda *args: model(list(args) if len(args) > 1 else args[0], training=False))
    else:
        specs = [tf.TensorSpec(s.shape, s.dtype, name=k) for k, s in fn.structured_input_signature[1].items()]
        func = tf.function(lambda *args: fn(**{s.name: a for s, a in zip(specs, args, strict=True)}))
    try:
        tf2onnx.convert.from_function(func, input_signature=specs, opset=request.recipe.runtime.opset,
                                      output_path=request.out)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"tf2onnx could not convert the model: {short(exc, 200)}", request.src) from None


def tflite_to_onnx(src: str, opset: int, out: str, report=ignore) -> ConvertResult:
    import tf2onnx

    warnings.simplefilter("ignore")
    t = time.monotonic()
    try:
        tf2onnx.convert.from_tflite(src, opset=opset, output_path=out)
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"tf2onnx could not convert the TFLite model: {short(exc, 200)}",
                              src) from None
    return ConvertResult(steps=({"name": f"tf2onnx from_tflite (opset {opset})",
                                 "seconds": round(time.monotonic() - t, 2)},))
