"""How one model's outputs score: accuracy on the labels, fidelity per output against the source, the metric that
ranks candidates (on the scoring output), and whether the quality gate holds."""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.base.errors import RecipeError, short
from studio.core.measure.fidelity import Metric, OutputFidelity, Scoring, class_scores, metric_label, per_output

SQNR_IDENTICAL = 200.0  # dB counted for outputs that are bit-identical (no noise at all)


@dataclass(frozen=True)
class Scores:
    metric: Metric
    metric_name: str  # as results.json, the chart and the manifest name it
    value: float | None  # what ranks the candidate; None: not computable
    accuracy: float | None = None  # top-1 % on the scoring output, with class labels
    fidelity: tuple[OutputFidelity, ...] = ()  # per output, against the source (empty for the source itself)
    scoring_output: str | None = None
    degraded: str = ""  # why the quality gate fails; '' when it holds

    @property
    def scoring(self) -> OutputFidelity | None:
        return next((f for f in self.fidelity if f.name == self.scoring_output), None)

    @property
    def agreement(self) -> float | None:
        f = self.scoring
        return None if f is None else f.top1_agreement

    @property
    def cosine(self) -> float | None:
        f = self.scoring
        return None if f is None else f.cosine

    @property
    def sqnr_db(self) -> float | None:
        f = self.scoring
        return None if f is None else f.sqnr_db


def score_outputs(outputs: Sequence[np.ndarray], y: np.ndarray | None, reference: Sequence[np.ndarray] | None,
                  scoring: Scoring, names: Sequence[str], trust_code: bool = False) -> Scores:
    """Scores of `outputs` (all samples); `reference` is the source's outputs (None: these are the source's)."""
    names = list(names) if len(names) == len(outputs) else [f"output{i}" for i in range(len(outputs))]
    fidelity = per_output(reference, outputs, names) if reference is not None else []
    index = scoring.pick_output(fidelity, names) if fidelity else _source_output(scoring, outputs, names)
    chosen = fidelity[index] if fidelity else None
    labelled = y is not None and y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    accuracy = float(np.mean(outputs[index].reshape(len(y), -1).argmax(1) == y) * 100) \
        if y is not None and labelled else None
    metric = scoring.pick_metric(labelled, chosen.class_scores if chosen is not None else
                                 class_scores(np.asarray(outputs[index]), names[index], len(names) == 1))
    value = _value(metric, scoring.metric, accuracy, chosen, outputs, y, trust_code)
    degraded = scoring.floors.reason(chosen) if chosen is not None else ""
    return Scores(metric, metric_label(metric, scoring.metric), value, accuracy, tuple(fidelity), names[index],
                  degraded)


def _source_output(scoring: Scoring, outputs: Sequence[np.ndarray], names: list[str]) -> int:
    """The scoring output of the source itself: as asked, else the first that looks like class scores."""
    if scoring.output is not None:
        return scoring.pick_output([], names)
    return next((i for i, (o, n) in enumerate(zip(outputs, names, strict=True))
                 if class_scores(np.asarray(o), n, len(names) == 1)), 0)


def _value(metric: Metric, spec: str | None, accuracy: float | None, chosen: OutputFidelity | None,
           outputs: Sequence[np.ndarray], y: np.ndarray | None, trust_code: bool) -> float | None:
    if metric == Metric.CUSTOM:
        return _custom(str(spec), trust_code)(list(outputs), y)
    if metric == Metric.ACCURACY:
        return accuracy
    if chosen is None:  # the source against itself
        return {Metric.AGREEMENT: 100.0, Metric.COSINE: 1.0, Metric.SQNR: SQNR_IDENTICAL}.get(metric)
    if metric == Metric.AGREEMENT:
        return chosen.top1_agreement if chosen.top1_agreement is not None else chosen.cosine * 100
    if metric == Metric.COSINE:
        return chosen.cosine
    return chosen.sqnr_db if chosen.sqnr_db is not None else SQNR_IDENTICAL


def _custom(spec: str, trust_code: bool) -> Callable[[list[np.ndarray], np.ndarray | None], float]:
    """The user's metric `path/to/file.py:function` or `package.module:function`, wrapped to return a float."""
    if not trust_code:
        raise RecipeError(f"--metric {spec} runs your own code: add --trust-code to allow it")
    where, _, name = spec.rpartition(":")
    try:
        if where.endswith(".py"):
            loader = importlib.util.spec_from_file_location(f"studio_user_metric_{Path(where).stem}", where)
            if loader is None or loader.loader is None:
                raise RecipeError(f"--metric: cannot load '{where}'")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        fn = getattr(module, name)
    except RecipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's file may fail in any way
        raise RecipeError(f"--metric {spec}: cannot load it ({short(exc)})") from None

    def call(outputs: list[np.ndarray], y: np.ndarray | None) -> float:
        try:
            return float(fn(outputs, y))
        except Exception as exc:  # noqa: BLE001
            raise RecipeError(f"--metric {spec} failed: {short(exc)}") from None
    return call
