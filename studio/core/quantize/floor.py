"""The fidelity below which a quantized model counts as degraded against its float original."""
from __future__ import annotations

import math
from typing import Any

MIN_COSINE = 0.95
MIN_SQNR_DB = 10.0


def shortfall(effect: dict[str, Any]) -> str | None:
    """Why `effect` (measure.verify.compare of the float and the quantized outputs) is degraded; None if it is not."""
    cosine, sqnr = effect.get("cosine"), effect.get("sqnr_db")
    if cosine is None or not math.isfinite(cosine) or cosine < MIN_COSINE:
        return f"output cosine {cosine:.3f} is below {MIN_COSINE}" if cosine is not None and math.isfinite(cosine) \
            else "the outputs are not finite numbers (overflow)"
    if sqnr is not None and (not math.isfinite(sqnr) or sqnr < MIN_SQNR_DB):
        return f"SQNR {sqnr:.1f} dB is below {MIN_SQNR_DB:g} dB"
    return None
