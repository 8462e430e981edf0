"""Unstructured magnitude pruning of plain weight arrays (ONNX initializers, TFLite buffers, Keras kernels)."""
from __future__ import annotations

import numpy as np


def global_magnitude_masks(arrays: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Boolean keep-masks that zero the `sparsity` fraction of smallest |w| across all arrays together."""
    flat = np.concatenate([np.abs(a).ravel() for a in arrays])
    k = round(sparsity * flat.size)
    if k == 0:
        return [np.ones(a.shape, bool) for a in arrays]
    threshold = np.partition(flat, k - 1)[k - 1]
    masks = [np.abs(a) > threshold for a in arrays]
    # ties at the threshold: keep exactly size - k weights overall
    kept = sum(int(m.sum()) for m in masks)
    excess = flat.size - k - kept
    for a, m in zip(arrays, masks, strict=True):
        if excess <= 0:
            break
        ties = np.flatnonzero((np.abs(a) == threshold).ravel() & ~m.ravel())[:excess]
        m.ravel()[ties] = True
        excess -= len(ties)
    return masks


def prune_arrays(arrays: list[np.ndarray], sparsity: float) -> tuple[list[np.ndarray], dict]:
    masks = global_magnitude_masks(arrays, sparsity)
    pruned = [np.where(m, a, np.zeros_like(a)) for a, m in zip(arrays, masks, strict=True)]
    total = sum(a.size for a in arrays)
    zeros = sum(int((p == 0).sum()) for p in pruned)
    return pruned, {"weights": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0}
