"""What a conversion route hands back from its worker: one picklable record, read by the float stage and the report."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.recipe.recipe import QuantMode


@dataclass(frozen=True, eq=False)
class ConvertResult:
    """A route's record. A count left None was not taken by the route (the report then uses the inspector's)."""
    steps: tuple[dict[str, Any], ...] = ()  # {"name", "seconds", ...} as report.json lists them
    notes: tuple[str, ...] = ()
    ref: list[np.ndarray] | None = None  # the converted model's source outputs on verify_x, after pruning
    ref_before: list[np.ndarray] | None = None  # the same before pruning
    prune_later: bool = False  # the route could not reach the weights: prune the exported float model
    quantized: Mapping[QuantMode, str] = field(default_factory=dict)  # {quant mode: path} quantized by TFLiteConverter
    params_before: int | None = None
    params_after: int | None = None
    macs_before: int | None = None
    macs_after: int | None = None
