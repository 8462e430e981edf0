"""Per-layer sensitivity, measured: the output error when only one layer is quantized, the accuracy drop when only
one layer is pruned; and accuracy-aware quantization that keeps the most sensitive layers in float."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from studio.core.base.progress import ignore
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.measure.verify import compare
from studio.core.quantize.backend import backend_for_file
from studio.core.tensors.samples import Samples

SAMPLES = 64  # inputs per measurement: enough to rank layers, cheap enough to try every layer


Scorer = Callable[[list[np.ndarray]], float | None]  # a model's outputs on the samples -> the sweep's metric


def _accuracy(outputs, y: np.ndarray | None) -> float | None:
    if y is None or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return None
    return float(np.mean(outputs[0].reshape(len(y), -1).argmax(1) == y) * 100)


def _runner_outputs(path: str, x: Samples):
    from studio.core.measure.runtimes import open_runner, predict

    return predict(open_runner(path), x)


def quant_sensitivity(float_path: str, q, calib_x: Samples, x: Samples, y: np.ndarray | None, *,
                      report=ignore, deadline: float | None = None) -> dict:
    """Quantize one weighted layer at a time (int8, static) and measure what that alone does to the outputs."""
    backend = backend_for_file(float_path)
    fmt = backend.suffix
    x, y = x.head(SAMPLES), None if y is None else y[:SAMPLES]
    tmpdir = tempfile.TemporaryDirectory()
    if fmt == "onnx":  # give old-opset models the opset per-channel QDQ needs, as the candidates got
        import onnx

        from studio.core.quantize.onnx_quant import QUANT_MIN_OPSET, _opset, normalize

        model = onnx.load(float_path)
        float_path = str(Path(tmpdir.name) / "float.onnx")
        onnx.save(normalize(model, max(_opset(model), QUANT_MIN_OPSET), []), float_path)
    ref = _runner_outputs(float_path, x)
    base = _accuracy(ref, y)
    layers = backend.weighted_layers(float_path)
    rows = []
    with tmpdir as tmp:
        for i, (name, op) in enumerate(layers):
            if deadline is not None and time.monotonic() > deadline:
                break
            report(i / max(1, len(layers)), f"quantizing layer {i + 1}/{len(layers)}: {name}")
            out = str(Path(tmp) / f"one.{fmt}")
            backend.quantize(float_path, out, q, calib_x, only=[name])
            outputs = _runner_outputs(out, x)
            got = compare(ref, outputs)
            row = {"layer": name, "op": op, "sqnr_db": got["sqnr_db"], "cosine": got["cosine"],
                   "error": 10 ** (-got["sqnr_db"] / 10) if got["sqnr_db"] is not None else 0.0}  # noise/signal power
            accuracy = _accuracy(outputs, y)
            if base is not None and accuracy is not None:
                row["accuracy_drop"] = base - accuracy
            rows.append(row)
    report(1.0, "quantization sensitivity measured")
    return {"kind": "quantization", "format": fmt, "samples": len(x), "layers": rows,
            "complete": len(rows) == len(layers)}


def keep_sensitive_float(float_path: str, out: str, q, calib_x, x, y, *, score: Scorer, ref_score: float,
                         max_drop: float, sensitivity: dict | None = None, report=ignore,
                         deadline: float | None = None) -> dict:
    """Re-quantize keeping the 1, 2, 4, ... most sensitive layers in float until the drop is within `max_drop`."""
    backend = backend_for_file(float_path)
    sensitivity = sensitivity or quant_sensitivity(float_path, q, calib_x, x, y, deadline=deadline)
    ranked = [r["layer"] for r in sorted(sensitivity["layers"], key=lambda r: -r["error"])]
    tried = []
    k = 1
    while k <= len(ranked):
        if deadline is not None and time.monotonic() > deadline:
            break
        exclude = ranked[:k]
        backend.quantize(float_path, out, q, calib_x, exclude=exclude)
        value = score(_runner_outputs(out, x))
        if value is None:
            break
        tried.append({"float_layers": exclude, "score": value})
        report(k / len(ranked), f"{k} layer(s) in float: {value:.2f}")
        if ref_score - value <= max_drop:
            return {"float_layers": exclude, "score": value, "met": True, "tried": tried, "sensitivity": sensitivity}
        k = k * 2 if k * 2 <= len(ranked) or k == len(ranked) else len(ranked)
    return {"float_layers": tried[-1]["float_layers"] if tried else [], "score": tried[-1]["score"] if tried else None,
            "met": False, "tried": tried, "sensitivity": sensitivity}


def prune_sensitivity(src: str, fmt: str, ratio: float, x: Samples, y: np.ndarray, *, arch: ArchSpec | None = None,
                      trust_pickle: bool = False, report=ignore) -> dict:
    """For each prunable layer, prune only that layer at `ratio` (torch-pruning) and measure the accuracy drop."""
    import copy

    import torch

    from studio.core.convert.torch_route import _classifier, examples, forward, load_module
    from studio.core.recipe.recipe import PruneMethod, Pruning

    loaded = load_module(src, fmt, arch, trust_pickle)
    module, prunable = loaded.module, loaded.prunable
    if not prunable:
        return {"kind": "pruning", "ratio": ratio, "layers": [], "note": "the model has no prunable nn.Module"}
    x, y = x.head(max(SAMPLES, 256)), y[:max(SAMPLES, 256)]
    example = examples(x.inputs)
    base = float(np.mean(forward(module, x)[0].argmax(1) == y) * 100)
    head = _classifier(module)
    names = [n for n, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d,
                                                                      torch.nn.Linear)) and m is not head]
    rows = []
    from studio.core.convert.torch_route import prune_structured

    for i, name in enumerate(names):
        report(i / max(1, len(names)), f"pruning only {name}")
        trial = copy.deepcopy(module)
        layers, _ = prune_structured(trial, example, Pruning(PruneMethod.STRUCTURED, 0.0, layer_ratios={name: ratio}))
        acc = float(np.mean(forward(trial, x)[0].argmax(1) == y) * 100)
        channels = next((r for r in layers if r["layer"] == name), None)
        rows.append({"layer": name, "op": type(dict(module.named_modules())[name]).__name__,
                     "accuracy": acc, "accuracy_drop": base - acc, "error": (base - acc) / 100,
                     "channels_before": channels["channels_before"] if channels else None,
                     "channels_after": channels["channels_after"] if channels else None})
    return {"kind": "pruning", "ratio": ratio, "samples": len(x), "base_accuracy": base, "layers": rows}
