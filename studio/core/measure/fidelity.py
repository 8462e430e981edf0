"""Fidelity per output (cosine, SQNR, max-abs error; top-1 agreement only where an output holds class scores), the
output and metric that score a candidate, and the quality gate a result must pass to count as a success."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from studio.core.base.errors import RecipeError

_CLASS_NAME = re.compile(r"(prob|score|logit|class|cls|label|softmax|pred)", re.IGNORECASE)


class Metric(StrEnum):
    """What ranks candidates: accuracy on labels, or fidelity to the source on the scoring output."""
    ACCURACY = "accuracy"
    AGREEMENT = "agreement"
    COSINE = "cosine"
    SQNR = "sqnr"
    CUSTOM = "custom"  # the user's own function (path/to/file.py:function)


@dataclass(frozen=True)
class OutputFidelity:
    name: str
    cosine: float
    sqnr_db: float | None  # None: identical outputs
    max_abs_error: float
    class_scores: bool
    top1_agreement: float | None = None  # %, only for an output of class scores

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_scores(ref: np.ndarray, name: str, only_output: bool) -> bool:
    """Whether an output holds class scores: one vector of 2+ values per sample that is a probability row, is named
    like one (prob, score, logits, class ...), or is the model's only output. Box regressions and maps are not."""
    r = np.asarray(ref)
    if r.ndim != 2 or r.shape[1] < 2:
        return False
    rows = r.astype(np.float64)
    probabilities = bool(np.all(rows >= -1e-6) and np.all(rows <= 1 + 1e-6)
                         and np.allclose(rows.sum(1), 1.0, atol=1e-3))
    return probabilities or bool(_CLASS_NAME.search(name)) or only_output


def per_output(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str]) -> list[OutputFidelity]:
    """Every output of `got` against the same output of `ref` (one row per sample)."""
    out = []
    for r, g, name in zip(ref, got, names, strict=True):
        r64 = np.asarray(r, np.float64)
        g64 = np.asarray(g, np.float64).reshape(r64.shape)
        rf, gf = r64.reshape(len(r64), -1), g64.reshape(len(g64), -1)
        denom = np.linalg.norm(rf, axis=1) * np.linalg.norm(gf, axis=1)
        both_zero = (np.linalg.norm(rf, axis=1) == 0) & (np.linalg.norm(gf, axis=1) == 0)  # one zero is far off
        cosine = float(np.mean(np.where(denom > 0, (rf * gf).sum(1) / np.maximum(denom, 1e-30),
                                        both_zero.astype(float))))
        noise = float(np.sum((r64 - g64) ** 2))
        sqnr = None if noise == 0 else float(10 * np.log10(float(np.sum(r64 ** 2)) / noise + 1e-30))
        is_class = class_scores(rf if r64.ndim == 2 else r64, name, len(names) == 1)
        agree = float(np.mean(rf.argmax(1) == gf.argmax(1)) * 100) if is_class else None
        out.append(OutputFidelity(name, cosine, sqnr, float(np.abs(r64 - g64).max(initial=0.0)), is_class, agree))
    return out


@dataclass(frozen=True)
class Floors:
    """The quality gate: below any of these on the scoring output, a result is degraded."""
    agreement: float = 90.0  # %, for an output of class scores
    cosine: float = 0.95
    sqnr_db: float = 10.0

    @classmethod
    def parse(cls, text: str | None) -> Floors:
        """'agreement=95,cosine=0.99,sqnr=15' (any of them); None or '' for the defaults."""
        values: dict[str, float] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = {"sqnr": "sqnr_db"}.get(key.strip().lower(), key.strip().lower())
            if not sep or key not in ("agreement", "cosine", "sqnr_db"):
                raise RecipeError(f"--min-fidelity '{part.strip()}' must be agreement=N, cosine=N or sqnr=N")
            try:
                values[key] = float(value)
            except ValueError:
                raise RecipeError(f"--min-fidelity '{part.strip()}': '{value}' is not a number") from None
        return cls(**values)

    def reason(self, f: OutputFidelity, *, by_agreement: bool = True) -> str:
        """'' when `f` passes the gate, else why it does not, in words. An output of class scores is judged by its
        top-1 agreement (fine-tuning moves logits on purpose) unless `by_agreement` is off (on random inputs the top
        class means nothing, and fp16 must keep the values themselves); any other output by its cosine and SQNR."""
        values = (f.cosine, f.max_abs_error, 0.0 if f.sqnr_db is None else f.sqnr_db)
        if not all(math.isfinite(v) for v in values):
            return f"output '{f.name}': its values are not finite numbers (overflow)"
        misses = []
        if f.top1_agreement is not None and by_agreement:
            if f.top1_agreement < self.agreement:
                misses.append(f"top-1 agreement {f.top1_agreement:.1f}% < {self.agreement:g}%")
        else:
            if f.cosine < self.cosine:
                misses.append(f"cosine {f.cosine:.3f} < {self.cosine:g}")
            if f.sqnr_db is not None and f.sqnr_db < self.sqnr_db:
                misses.append(f"SQNR {f.sqnr_db:.1f} dB < {self.sqnr_db:g} dB")
        return f"output '{f.name}': " + ", ".join(misses) if misses else ""

    def missed(self, outputs: Sequence[OutputFidelity], *, by_agreement: bool = True) -> str:
        """Why any of `outputs` fails the gate ('' when all pass)."""
        return "; ".join(r for r in (self.reason(f, by_agreement=by_agreement) for f in outputs) if r)


@dataclass(frozen=True)
class Scoring:
    """Which output and metric score a candidate (None: the default that fits), and the gate."""
    output: str | None = None
    metric: str | None = None  # a Metric value, or path/to/file.py:function
    floors: Floors = Floors()

    def pick_output(self, fidelity: Sequence[OutputFidelity], names: Sequence[str]) -> int:
        """The scoring output: the one asked for, else the first holding class scores, else the first."""
        if self.output is not None:
            if self.output not in names:
                raise RecipeError(f"--score-output '{self.output}' is not an output of the model ({', '.join(names)})")
            return list(names).index(self.output)
        return next((i for i, f in enumerate(fidelity) if f.class_scores), 0)

    def pick_metric(self, labelled: bool, class_output: bool) -> Metric:
        if self.metric is not None:
            return Metric.CUSTOM if ":" in self.metric else Metric(self.metric)
        if labelled:
            return Metric.ACCURACY
        return Metric.AGREEMENT if class_output else Metric.COSINE


def metric_label(metric: Metric, spec: str | None = None) -> str:
    """The metric by name, as results.json, the chart axis and the manifest show it."""
    return {Metric.ACCURACY: "top-1 accuracy (%)", Metric.AGREEMENT: "top-1 agreement with the original (%)",
            Metric.COSINE: "output cosine similarity with the original", Metric.SQNR: "output SQNR (dB)",
            Metric.CUSTOM: f"{spec}"}[metric]
