"""A sweep's evaluation data, prepared once in RUN/work/data.npz: the samples of every input at the resolved shapes,
the labels and the source's reference outputs. Calibration and verification take the first samples of it (views,
not copies), and workers map the large arrays from the file instead of loading them whole."""
from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.base import atomic
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import BatchMode, InputShape, Origin

VERIFY_SAMPLES = 16
MAP_BYTES = 1 << 20  # members at least this big are memory-mapped; smaller ones are cheaper to read
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
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # uncompressed members, so read() can map them in place
    atomic.write_bytes(path, buf.getvalue())


def read(path: str | Path, inputs: Sequence[InputShape]) -> EvalData:
    arrays = load_arrays(path)
    y = arrays[_Y] if arrays[_Y].size else None
    reference = [arrays[k] for k in sorted(arrays) if k.startswith(_REF)]  # ref_out000, ref_out001, ...
    return EvalData(Samples.from_npz(arrays, _EVAL, inputs), y, reference)


def load_arrays(path: str | Path, map_bytes: int = MAP_BYTES) -> dict[str, np.ndarray]:
    """Every member of an .npz by name: members stored uncompressed of at least `map_bytes` as copy-on-write
    np.memmap views of the file (np.load's mmap_mode does not reach inside an .npz), the rest read."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            large = info.compress_type == zipfile.ZIP_STORED and info.file_size >= map_bytes
            mapped = _map_member(path, fh, info) if large else None
            if mapped is not None:
                arrays[name] = mapped
            else:
                with zf.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays


def _map_member(path: str | Path, fh, info: zipfile.ZipInfo) -> np.memmap | None:
    """The member's array mapped at its data offset (after the zip's local header and the .npy header); None where
    it cannot be mapped (object or empty arrays)."""
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    version = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(fh)
    if dtype.hasobject or not int(np.prod(shape)):
        return None
    # mode "c": a worker may write to its view (a framework's in-place op) without touching the file
    return np.memmap(path, dtype=dtype, mode="c", offset=fh.tell(), shape=shape, order="F" if fortran else "C")


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
