"""TFLite fp16 checked against the quality gate. Both TFLiteConverter's float16 and ai-edge-quantizer's float
casting store the weights in half precision (compute stays float32 on CPU), so fp16 breaks where a weight leaves
the float16 range or loses its precision. TFLiteConverter offers no per-op float16 control; ai-edge-quantizer does
(a NO_QUANTIZE scope per op), so a degraded result is made again from the float model with ai-edge-quantizer,
keeping in float32 the weights of the ops whose half-precision weights are furthest off. Run in an ai-edge-litert
worker."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studio.core.measure.fidelity import Floors, per_output
from studio.core.tensors.samples import Samples

ROUNDS = 3  # measured retries
PER_ROUND = 2  # ops kept in float32 per retry
WEIGHT_ERROR = 1e-2  # relative error of a weight cast to float16 beyond which its op is blamed (rounding: ~3e-4)


@dataclass(frozen=True)
class Fp16Check:
    kept: tuple[tuple[str, str, float], ...]  # (op scope, op, weight error) whose weights stayed float32
    first_shortfall: str | None  # why the first result was degraded (None: it was not)
    shortfall: str | None  # why the result is still degraded (None: it is within the gate)
    converter: str  # who made the first result: "TFLiteConverter" or "ai-edge-quantizer"

    def notes(self) -> list[str]:
        notes = []
        if self.first_shortfall and self.kept:
            ops = ", ".join(f"{n} ({op}, weight error {e:.3g})" for n, op, e in self.kept)
            remade = " (TFLiteConverter has no per-op float16 control: made again with ai-edge-quantizer)" \
                if self.converter == "TFLiteConverter" else ""
            notes.append(f"fp16 was degraded ({self.first_shortfall}): kept in float32 the weights of the ops whose"
                         f" half-precision weights were furthest off{remade}: {ops}")
        if self.shortfall:
            why = "" if self.kept else ": no op's float16 weights are off, and TFLite has no other per-op float16" \
                                       " control to retry with"
            notes.append(f"fp16 output is still degraded against the float model: {self.shortfall}{why}")
        return notes


def checked_fp16(float_path: str, out: str, float_outputs: Sequence[np.ndarray], x: Samples, q,
                 converter: str) -> Fp16Check:
    """Check the fp16 model `out` against `float_outputs` (the float model's on `x`); when it is degraded, write
    it again keeping the worst ops in float32, as long as ops are left to blame."""
    from studio.core.quantize.tflite_quant import quantize

    reason = first = shortfall(float_outputs, out, x)
    kept: list[tuple[str, str, float]] = []
    for _ in range(ROUNDS):
        if reason is None:
            break
        worst = weight_offenders(float_path, skip={n for n, _, _ in kept})[:PER_ROUND]
        if not worst:
            break
        kept += worst
        quantize(float_path, out, q, x, exclude=[n for n, _, _ in kept])
        reason = shortfall(float_outputs, out, x)
    return Fp16Check(tuple(kept), first, reason, converter)


def shortfall(float_outputs: Sequence[np.ndarray], path: str, x: Samples) -> str | None:
    """Why the model at `path` is degraded against `float_outputs` on every output (by cosine and SQNR: fp16
    must keep the values, not only the top class); None when it is not."""
    from studio.core.measure.runtimes import TfliteRunner, predict

    got = predict(TfliteRunner(path), x)
    return Floors().missed(per_output(float_outputs, got, [f"output{i}" for i in range(len(got))]),
                           by_agreement=False) or None


def weight_offenders(float_path: str, skip: set[str]) -> list[tuple[str, str, float]]:
    """(op scope, op, relative error) of the weighted ops whose float32 weights cast to float16 are off by more
    than WEIGHT_ERROR (inf: beyond the float16 range), worst first."""
    from studio.core.quantize.tflite_quant import float_weights

    found = []
    for w in float_weights(float_path):
        if w.scope in skip:
            continue
        with np.errstate(over="ignore"):
            half = w.values.astype(np.float16).astype(np.float64)
        full = w.values.astype(np.float64)
        norm = float(np.linalg.norm(full))
        error = float("inf") if not np.isfinite(half).all() else \
            float(np.linalg.norm(full - half) / norm) if norm > 0 else 0.0
        if error > WEIGHT_ERROR:
            found.append((w.scope, w.op, error))
    return sorted(found, key=lambda f: -f[2])
