"""A sweep's evaluation data, prepared once in RUN/work/data.npz: the samples of every input at the resolved shapes,
the labels and the source's reference outputs. Calibration and verification take the first samples of it."""
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base import atomic
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import BatchMode, InputShape, Origin

VERIFY_SAMPLES = 16
_EVAL, _Y, _REF = "eval", "eval_y", "ref_out"


@dataclass(frozen=True, eq=False)
class EvalData:
    samples: Samples
    y: np.ndarray | None  # integer class labels, or None
    reference: list[np.ndarray]  # the source's outputs on the samples; empty until the reference job ran

    def calib(self, count: int) -> Samples:
        return self.samples.head(count)

    def verify(self) -> Samples:
        return self.samples.head(VERIFY_SAMPLES)


def write(path: Path, samples: Samples, y: np.ndarray | None, reference: Sequence[np.ndarray] = ()) -> None:
    arrays: dict[str, np.ndarray] = samples.to_npz(_EVAL)
    arrays[_Y] = y if y is not None else np.zeros(0, np.int64)
    arrays.update({f"{_REF}{i:03d}": out for i, out in enumerate(reference)})
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
    atomic.write_bytes(path, buf.getvalue())


def read(path: str | Path, inputs: Sequence[InputShape]) -> EvalData:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    y = arrays[_Y] if arrays[_Y].size else None
    reference = [arrays[k] for k in sorted(arrays) if k.startswith(_REF)]  # ref_out000, ref_out001, ...
    return EvalData(Samples.from_npz(arrays, _EVAL, inputs), y, reference)


def is_current(path: Path) -> bool:
    """Whether data.npz is of this layout (an older Studio wrote eval_x): else it is prepared again."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return f"{_EVAL}_constant" in npz.files
    except (OSError, ValueError):
        return False


def inputs_to_json(inputs: Sequence[InputShape]) -> list[dict[str, Any]]:
    return [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape), "batch": i.batch.value,
             "from": i.origin.value} for i in inputs]


def inputs_from_json(rows: Sequence[dict[str, Any]]) -> tuple[InputShape, ...]:
    return tuple(InputShape(r["name"], r["dtype"], tuple(r["shape"]), BatchMode(r["batch"]), Origin(r["from"]))
                 for r in rows)
