"""The fidelity below which a quantized model counts as degraded against its float original."""
from __future__ import annotations

import math
from typing import Any

from studio.core.measure.fidelity import Floors

MIN_COSINE = Floors().cosine  # the quality gate's defaults, one source for both
MIN_SQNR_DB = Floors().sqnr_db


def shortfall(effect: dict[str, Any]) -> str | None:
    """Why `effect` (measure.verify.compare of the float and the quantized outputs) is degraded; None if it is not."""
    cosine, sqnr = effect.get("cosine"), effect.get("sqnr_db")
    if cosine is None or not math.isfinite(cosine) or cosine < MIN_COSINE:
        return f"output cosine {cosine:.3f} is below {MIN_COSINE}" if cosine is not None and math.isfinite(cosine) \
            else "the outputs are not finite numbers (overflow)"
    if sqnr is not None and (not math.isfinite(sqnr) or sqnr < MIN_SQNR_DB):
        return f"SQNR {sqnr:.1f} dB is below {MIN_SQNR_DB:g} dB"
    return None
