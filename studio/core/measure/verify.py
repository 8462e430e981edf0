"""Numerical comparison of model outputs: conversion checks (fail loudly above tolerance) and agreement."""
from __future__ import annotations

import numpy as np

from studio.core.base.errors import ConversionError

FLOAT_TOLERANCE = 1e-3  # relative: max |a-b| / max |ref| for a float conversion


def compare(ref: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Max abs error, relative error, mean cosine similarity, SQNR and (for class scores) top-1 agreement."""
    if len(ref) != len(got):
        raise ConversionError(f"the converted model has {len(got)} outputs, the source has {len(ref)}")
    max_abs, rel, cos, sqnr, agree = 0.0, 0.0, [], [], []
    for r, g in zip(ref, got, strict=True):
        r = np.asarray(r, np.float64)
        g = np.asarray(g, np.float64)
        if r.size != g.size:
            raise ConversionError(f"an output changed shape: {list(r.shape)} -> {list(g.shape)}")
        g = g.reshape(r.shape)
        err = np.abs(r - g)
        max_abs = max(max_abs, float(err.max(initial=0.0)))
        rel = max(rel, float(err.max(initial=0.0) / (np.abs(r).max(initial=0.0) + 1e-12)))
        rf, gf = r.reshape(len(r), -1), g.reshape(len(g), -1)
        denom = np.linalg.norm(rf, axis=1) * np.linalg.norm(gf, axis=1)
        both_zero = (np.linalg.norm(rf, axis=1) == 0) & (np.linalg.norm(gf, axis=1) == 0)  # else a zero is far
        cos.append(float(np.mean(np.where(denom > 0, (rf * gf).sum(1) / np.maximum(denom, 1e-30),
                                          both_zero.astype(float)))))
        noise = float(np.sum((r - g) ** 2))
        sqnr.append(float("inf") if noise == 0 else 10 * np.log10(float(np.sum(r ** 2)) / noise + 1e-30))
        if rf.shape[1] > 1:
            agree.append(float(np.mean(rf.argmax(1) == gf.argmax(1)) * 100))
    finite = [v for v in sqnr if np.isfinite(v)]
    result = {"max_abs_error": max_abs, "relative_error": rel, "cosine": float(np.mean(cos)),
              "sqnr_db": float(min(finite)) if finite else None}  # None: the outputs are identical
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
