"""Numerical comparison of model outputs: conversion checks (fail loudly above tolerance) and agreement."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from studio.core.base.errors import ConversionError
from studio.core.measure.fidelity import per_output

FLOAT_TOLERANCE = 1e-3  # relative: max |a-b| / max |ref| for a float conversion


def compare(ref: list[np.ndarray], got: list[np.ndarray], names: Sequence[str] | None = None) -> dict:
    """Max abs error, relative error, cosine similarity and SQNR (the worst output), top-1 agreement (outputs of
    class scores only), and the same per output under "outputs"."""
    if len(ref) != len(got):
        raise ConversionError(f"the converted model has {len(got)} outputs, the source has {len(ref)}")
    for r, g in zip(ref, got, strict=True):
        if np.size(r) != np.size(g):
            raise ConversionError(f"an output changed shape: {list(np.shape(r))} -> {list(np.shape(g))}")
    names = list(names) if names is not None and len(names) == len(ref) else [f"output{i}" for i in range(len(ref))]
    outputs = per_output(ref, got, names)
    rel = max((f.max_abs_error / (float(np.abs(np.asarray(r, np.float64)).max(initial=0.0)) + 1e-12)
               for f, r in zip(outputs, ref, strict=True)), default=0.0)
    finite = [f.sqnr_db for f in outputs if f.sqnr_db is not None]
    result = {"max_abs_error": max((f.max_abs_error for f in outputs), default=0.0), "relative_error": rel,
              "cosine": min((f.cosine for f in outputs), default=1.0),
              "sqnr_db": min(finite) if finite else None,  # None: the outputs are identical
              "outputs": [f.to_dict() for f in outputs]}
    agree = [f.top1_agreement for f in outputs if f.top1_agreement is not None]
    if agree:
        result["top1_agreement"] = float(np.mean(agree))
    return result


def check_float(ref, got, what: str, path: str | None = None, tolerance: float = FLOAT_TOLERANCE) -> dict:
    """Compare a float conversion with its source; raise ConversionError above the tolerance."""
    result = compare(ref, got)
    result["tolerance"] = tolerance
    result["passed"] = result["relative_error"] <= tolerance
    if not result["passed"]:
        raise ConversionError(f"{what} changed the model's outputs: max abs error {result['max_abs_error']:.3g}"
                              f" (relative {result['relative_error']:.3g}) is above the tolerance {tolerance:g}",
                              path)
    return result
