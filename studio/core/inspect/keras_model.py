"""Inspect Keras (.keras, legacy .h5) models and TensorFlow SavedModel directories."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from studio.core.base.errors import ModelLoadError, short
from studio.core.base.progress import ignore
from studio.core.inspect.formats import Framework
from studio.core.inspect.modelinfo import LayerInfo, ModelInfo, Problem, TensorInfo, histogram


def _dims(shape) -> list:
    return ["?" if d is None else int(d) for d in (list(shape) if shape is not None else [])]


def _batch1(shape) -> list[int] | None:
    dims = [1 if d is None else d for d in list(shape)]
    return dims if all(isinstance(d, int) for d in dims) else None


def load_keras(path: str | os.PathLike):
    """keras.saving.load_model in safe mode: a Lambda layer's Python code is never deserialized."""
    import keras

    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except ValueError as exc:
        if "unsafe" in str(exc).lower() or "lambda" in str(exc).lower():
            raise ModelLoadError("contains a Lambda layer whose Python code would run on loading; Studio loads Keras"
                                 " models in safe mode and refuses it", path) from None
        raise ModelLoadError(f"Keras could not load the model: {short(exc, 200)}", path) from None
    except Exception as exc:  # noqa: BLE001 - h5py, zipfile and JSON errors for corrupt files
        raise ModelLoadError(f"Keras could not load the model ({short(exc, 160)}): the file is corrupt or truncated",
                             path) from None


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer


def _layer_macs(layer) -> int:
    """MACs of one Keras layer at batch 1, from its output shape and kernel."""
    try:
        out = _batch1(layer.output.shape)
    except (AttributeError, ValueError):
        return 0
    if out is None:
        return 0
    kind = type(layer).__name__
    kernel = getattr(layer, "kernel", None)
    if kind == "Dense" and kernel is not None:
        return math.prod(out) * int(kernel.shape[0])
    if kind in ("Conv1D", "Conv2D", "Conv3D") and kernel is not None:
        return math.prod(out) * math.prod(int(d) for d in kernel.shape[:-1])
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        k: Any = getattr(layer, "depthwise_kernel", kernel)
        return math.prod(out) * math.prod(int(d) for d in k.shape[:-2])
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        dk, pk = layer.depthwise_kernel, layer.pointwise_kernel
        spatial = math.prod(out[:-1])
        return spatial * int(dk.shape[-2]) * int(dk.shape[-1]) * math.prod(int(d) for d in dk.shape[:-2]) + \
            math.prod(out) * int(pk.shape[-2])
    return 0


def _producer_name(tensor, index: int) -> str:
    """Keras 3 names output tensors 'keras_tensor_NN'; the layer that makes them has the name a user chose."""
    history = getattr(tensor, "_keras_history", None)
    op = getattr(history, "operation", None)
    return getattr(op, "name", None) or getattr(tensor, "name", None) or f"output{index}"


def inspect_keras_model(model, path: Path, fmt: str) -> ModelInfo:
    import keras

    inputs = [TensorInfo(t.name, _dims(t.shape), str(t.dtype)) for t in model.inputs]
    outputs = [TensorInfo(_producer_name(t, i), _dims(t.shape), str(t.dtype)) for i, t in enumerate(model.outputs)]
    weights: dict[str, int] = {}
    for w in model.weights:
        dt = str(w.dtype)
        weights[dt] = weights.get(dt, 0) + math.prod(int(d) for d in w.shape)
    leaves = list(_leaf_layers(model))
    layers = []
    for layer in leaves:
        try:
            shape = _dims(layer.output.shape)
        except (AttributeError, ValueError):
            shape = None
        layers.append(LayerInfo(layer.name, type(layer).__name__, int(layer.count_params()), shape))
    macs = sum(_layer_macs(layer) for layer in leaves)
    details = {"keras_version": keras.__version__, "model_class": type(model).__name__}
    size = os.path.getsize(path)
    return ModelInfo(str(path), fmt, Framework.KERAS, inputs=inputs, outputs=outputs,
                     params=int(model.count_params()), size_bytes=size, files=[str(path)], weight_dtypes=weights,
                     ops=histogram(type(x).__name__ for x in leaves), macs=macs, details=details, layers=layers)


def _savedmodel_macs(graph) -> int | None:
    total = 0
    for op in graph.get_operations():
        if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"):
            continue
        out = _batch1(op.outputs[0].shape.as_list()) if op.outputs[0].shape.rank else None
        w = op.inputs[1].shape.as_list() if op.inputs[1].shape.rank else None
        a = op.inputs[0].shape.as_list() if op.inputs[0].shape.rank else None
        if out is None or w is None or None in w:
            return None
        if op.type == "Conv2D":
            total += math.prod(out) * w[0] * w[1] * w[2]
        elif op.type == "DepthwiseConv2dNative":
            total += math.prod(out) * w[0] * w[1]
        else:
            transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
            k = None if a is None else a[-2] if transpose_a else a[-1]
            if k is None:
                return None
            total += math.prod(out) * k
    return total


def inspect_savedmodel(path: Path) -> ModelInfo:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf and TF errors for corrupt directories
        raise ModelLoadError(f"TensorFlow could not load the SavedModel ({short(exc, 160)}): the directory is corrupt"
                             " or incomplete", path) from None
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    problems = []
    if not sigs:
        raise ModelLoadError("the SavedModel has no signatures, so its inputs are unknown; re-save it with a"
                             " serving signature", path)
    name = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
    if name != "serving_default":
        problems.append(Problem("warning", "no-serving-default", f"no serving_default signature; using '{name}'"))
    fn = sigs[name]
    in_specs = fn.structured_input_signature[1]
    inputs = [TensorInfo(k, _dims(v.shape), v.dtype.name) for k, v in sorted(in_specs.items())]
    outputs = [TensorInfo(k, _dims(v.shape), v.dtype.name) for k, v in sorted(fn.structured_outputs.items())]
    weights: dict[str, int] = {}
    for v in fn.variables:
        weights[v.dtype.name] = weights.get(v.dtype.name, 0) + math.prod(v.shape.as_list())
    noise = {"Placeholder", "ReadVariableOp", "Identity", "NoOp", "Const", "StatefulPartitionedCall"}
    graph = fn.graph
    ops = [op.type for op in graph.get_operations() if op.type not in noise]
    inner_ops = []
    for f in graph.as_graph_def().library.function:  # the real layers live in the called functions
        inner_ops += [n.op for n in f.node_def if n.op not in noise]
    files = sorted(str(Path(root) / f) for root, _, fs in os.walk(path) for f in fs)
    size = sum(os.path.getsize(f) for f in files)
    layers = [LayerInfo(v.name, "variable", math.prod(v.shape.as_list()), _dims(v.shape)) for v in fn.variables]
    return ModelInfo(str(path), "savedmodel", Framework.TENSORFLOW, inputs=inputs, outputs=outputs,
                     params=sum(weights.values()), size_bytes=size, files=files, weight_dtypes=weights,
                     ops=histogram(inner_ops or ops), macs=_concrete_macs(fn), problems=problems,
                     details={"signature": name, "signatures": sorted(sigs), "tensorflow_version": tf.__version__},
                     layers=layers)


def _concrete_macs(fn) -> int | None:
    """Trace the signature at batch 1 and count multiplies in the flattened graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        specs = {k: tf.TensorSpec(_batch1(v.shape) or v.shape, v.dtype)
                 for k, v in fn.structured_input_signature[1].items()}
        concrete = tf.function(lambda **kw: fn(**kw)).get_concrete_function(**specs)
        frozen = convert_variables_to_constants_v2(concrete)
        return _savedmodel_macs(frozen.graph)
    except Exception:  # noqa: BLE001 - MACs are best effort
        return None


def inspect_keras(path: str, fmt: str, report=ignore) -> ModelInfo:
    p = Path(path)
    report(0.1, "loading with TensorFlow")
    if fmt == "savedmodel":
        return inspect_savedmodel(p)
    return inspect_keras_model(load_keras(p), p, fmt)
