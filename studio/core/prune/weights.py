"""Unstructured magnitude pruning of plain weight arrays (ONNX initializers, TFLite buffers, Keras and PyTorch
kernels): per layer (each layer loses the same fraction) or global (one threshold across all layers)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studio.core.recipe.recipe import PruneScope


@dataclass(frozen=True)
class LayerSparsity:
    layer: str
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0


@dataclass(frozen=True)
class PruneStats:
    """What unstructured pruning did, layer by layer."""
    scope: PruneScope
    layers: tuple[LayerSparsity, ...]

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers)

    def step(self, ratio: float, seconds: float) -> dict[str, Any]:
        """The step as report.json lists it, with the sparsity of every layer."""
        return {"name": f"unstructured pruning {ratio:.2f} ({self.scope.value})", "seconds": round(seconds, 2),
                "scope": self.scope.value, "weights": self.weights, "zeros": self.zeros,
                "sparsity": self.zeros / self.weights if self.weights else 0.0,
                "layers": [{"layer": s.layer, "weights": s.weights, "zeros": s.zeros,
                            "sparsity": round(s.sparsity, 4)} for s in self.layers]}


def layer_masks(arrays: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Boolean keep-masks that zero the `sparsity` fraction of smallest |w| in each array on its own."""
    masks = []
    for a in arrays:
        k = round(sparsity * a.size)
        keep = np.ones(a.size, bool)
        if k:
            keep[np.argpartition(np.abs(a).ravel(), k - 1)[:k]] = False  # exactly k zeroed, ties included
        masks.append(keep.reshape(a.shape))
    return masks


def global_magnitude_masks(arrays: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
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


def prune_arrays(named: Sequence[tuple[str, np.ndarray]], sparsity: float,
                 scope: PruneScope = PruneScope.LAYER) -> tuple[list[np.ndarray], PruneStats]:
    """Zero the smallest weights of (layer name, array) pairs; returns the pruned arrays in order and the stats."""
    arrays = [a for _, a in named]
    masks = layer_masks(arrays, sparsity) if scope == PruneScope.LAYER else global_magnitude_masks(arrays, sparsity)
    pruned = [np.where(m, a, np.zeros_like(a)) for a, m in zip(arrays, masks, strict=True)]
    layers = tuple(LayerSparsity(name, int(p.size), int((p == 0).sum()))
                   for (name, _), p in zip(named, pruned, strict=True))
    return pruned, PruneStats(scope, layers)
