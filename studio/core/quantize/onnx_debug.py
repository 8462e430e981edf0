"""Per-layer quantization error of an ONNX QDQ model against its float model, with onnxruntime's qdq_loss_debug:
every float tensor saved as an extra output (modify_model_output_intermediate_tensors), both models run on the same
samples (collect_activations), tensors paired by name (create_activation_matching) and compared
(compute_activation_error). Run in an onnxruntime worker."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.tensors.samples import Samples


@dataclass(frozen=True)
class LayerError:
    """How far one tensor of the quantized model is from the same tensor of the float model, over all samples."""
    tensor: str
    node: str  # the node that produces it (what "keep in float" excludes); "" for a graph input
    op: str
    sqnr_db: float  # 10 log10(signal power / noise power); inf when identical
    cosine: float
    relative_error: float  # ||quantized - float|| / ||float||

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "node": self.node, "op": self.op, "sqnr_db": self.sqnr_db,
                "cosine": self.cosine, "relative_error": self.relative_error}


def float_model(stage_float: str, out: str, *, opset: int | None, prune: float | None) -> None:
    """The float model an int8 candidate was quantized from, as finish_onnx made it (opset, weight pruning)."""
    import onnx

    from studio.core.quantize.onnx_quant import QUANT_MIN_OPSET, _opset, normalize, prune_model

    model = onnx.load(stage_float)
    if max(_opset(model), opset or 0) < QUANT_MIN_OPSET:  # as finish_onnx raises it for int8
        opset = QUANT_MIN_OPSET
    model = normalize(model, opset, [])
    if prune:
        prune_model(model, prune)
    onnx.save(model, out)


def layer_errors(float_path: str, quantized: str, samples: Samples, work: Path) -> list[LayerError]:
    """Every float tensor the QDQ model quantizes, compared with the float model's; worst (lowest SQNR) first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from studio.core.quantize.onnx_quant import pre_process

    reference = str(work / "float-pre.onnx")
    pre_process(float_path, reference, [])  # what the quantizer saw: the names the QDQ model's tensors keep
    acts = {}
    for name, path in (("float", reference), ("quantized", quantized)):
        augmented = str(work / f"{name}-augmented.onnx")
        modify_model_output_intermediate_tensors(path, augmented)
        acts[name] = collect_activations(augmented, _feeds(path, samples))
    matched = {k: v for k, v in create_activation_matching(acts["quantized"], acts["float"]).items()
               if v.get("float")}
    producers = {out: (n.name, n.op_type) for n in onnx.load(reference).graph.node for out in n.output}
    sqnr = compute_activation_error(matched)
    cosine = compute_activation_error(matched, err_func=tensor_cosine)
    relative = compute_activation_error(matched, err_func=relative_error)
    rows = [LayerError(t, *producers.get(t, ("", "input")), cosine=min(1.0, cosine[t]["xmodel_err"]),
                       relative_error=relative[t]["xmodel_err"],  # onnxruntime's SQNR of identical tensors is finite
                       sqnr_db=sqnr[t]["xmodel_err"] if relative[t]["xmodel_err"] else float("inf")) for t in matched]
    return sorted(rows, key=lambda r: r.sqnr_db)


def _flat(tensors: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


def tensor_cosine(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The cosine of one tensor's values over all samples, flattened together (not a mean per sample)."""
    x, y = _flat(a), _flat(b)
    denom = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / denom) if denom > 0 else 1.0


def relative_error(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """||b - a|| / ||a|| over all samples."""
    x, y = _flat(a), _flat(b)
    return float(np.linalg.norm(x - y) / max(float(np.linalg.norm(x)), 1e-30))


def _feeds(path: str, samples: Samples) -> list[dict[str, np.ndarray]]:
    from studio.core.measure.runtimes import OnnxRunner, named_feeds

    specs = {i.name: i for i in OnnxRunner(path).inputs}
    return [{n: specs[n].encode(v) for n, v in run.items()} for run in named_feeds(list(specs), samples)]
