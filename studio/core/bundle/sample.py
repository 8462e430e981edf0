"""The sample every bundle carries: inputs at the resolved shapes and dtypes (from the user's data, else synthetic)
and the outputs this machine's runtime gives for them, so the runner on the device feeds exactly these and checks
that it gets the same answers; `verify` refuses a sample that does not fit the model's inputs."""
from __future__ import annotations

import ast
import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.core.base.errors import StudioError, short
from studio.core.tensors.shapes import ShapeRequest

if TYPE_CHECKING:  # numpy is imported where a sample is made: verifying one (the flasher) reads only headers
    import numpy as np

SAMPLE = "sample.npz"
FLOAT_RTOL = 1e-3  # device runtime vs this machine's, same model: kernels differ in the last bits only


@dataclass(frozen=True, eq=False)
class BundleSample:
    inputs: tuple[np.ndarray, ...]  # one run's feeds, in the model's input order, already in the inputs' dtypes
    expected: tuple[np.ndarray, ...]  # the model's tensor outputs on them, on this machine
    source: str  # "data" or "synthetic"
    notes: tuple[str, ...] = ()

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"input{k:03d}": a for k, a in enumerate(self.inputs)}
        out.update({f"expected{k:03d}": a for k, a in enumerate(self.expected)})
        return out

    def manifest_entry(self, names: Sequence[str]) -> dict[str, Any]:
        return {"file": SAMPLE, "source": self.source, "rtol": FLOAT_RTOL,
                "inputs": [{"name": n, "shape": list(a.shape), "dtype": a.dtype.name}
                           for n, a in zip(names, self.inputs, strict=True)],
                "expected": len(self.expected)}


def make_sample(model: str, dataset: str | os.PathLike | None, shapes: ShapeRequest, preprocess) -> BundleSample:
    """The first sample of `dataset` (fitted to the model's inputs as the recipe says), else synthetic inputs at
    the resolved shapes; with the outputs of `model` on them."""
    import numpy as np

    from studio.core.data.datasets import load_dataset
    from studio.core.data.feeding import fit
    from studio.core.measure.runtimes import open_runner, timing_feeds
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import resolve

    runner = open_runner(model)
    shapes = _renamed(shapes, [t.name for t in runner.declared])
    if dataset:
        fitted = fit(load_dataset(dataset, limit=1, resize=preprocess.resize), runner.declared, shapes, preprocess, 1)
        samples, source, notes = fitted.samples, "data", fitted.notes
    else:
        samples, source, notes = synthetic(resolve(runner.declared, shapes, path=model), 1), "synthetic", ()
    feeds = timing_feeds(runner, samples)
    outputs = [np.asarray(y) for y in runner.run(feeds)]  # a sequence of maps stays an object array: not checked
    return BundleSample(tuple(feeds), tuple(y for y in outputs if y.dtype != object), source, notes)


def _renamed(shapes: ShapeRequest, names: list[str]) -> ShapeRequest:
    """Shapes recorded for the source's inputs, applied to this model's inputs by position when a converter renamed
    them."""
    given = [n for n, _ in shapes.entries]
    if not shapes or "" in given or all(n in names for n in given) or len(given) != len(names):
        return shapes
    return ShapeRequest(tuple((n, dims) for n, (_, dims) in zip(names, shapes.entries, strict=True)))


def check_sample(data: bytes, manifest: dict[str, Any], path: str | None, error: type[StudioError]) -> None:
    """Refuse a sample that the model cannot take: a missing or extra input, another dtype, a fixed dim changed.
    Reads only the .npy headers (no numpy: the field flasher verifies bundles without it)."""
    entry = manifest.get("sample")
    if not isinstance(entry, dict):
        return  # an older bundle's sample: its runner feeds it as it is
    try:
        headers = _npy_headers(data)
    except (zipfile.BadZipFile, OSError, ValueError, SyntaxError, KeyError, EOFError) as exc:
        raise error(f"{SAMPLE} is not a readable .npz ({short(exc)})", path) from None
    inputs = manifest.get("inputs") or []
    given = sum(k.startswith("input") for k in headers)
    if given != len(inputs) or any(f"input{k:03d}" not in headers for k in range(len(inputs))):
        raise error(f"{SAMPLE} holds {given} inputs, the model takes {len(inputs)}", path)
    for k, spec in enumerate(inputs):
        why = _mismatch(spec, *headers[f"input{k:03d}"])
        if why:
            raise error(f"{SAMPLE} does not fit input '{spec.get('name')}': {why}", path)


_DESCR = {"f2": "float16", "f4": "float32", "f8": "float64", "i1": "int8", "i2": "int16", "i4": "int32",
          "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64", "b1": "bool"}


def _npy_headers(data: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{array name: (dtype name, shape)} of an .npz, from each .npy member's header."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            with zf.open(name) as fh:
                head = fh.read(12)
                if not head.startswith(b"\x93NUMPY"):
                    raise ValueError(f"{name} is not an .npy array")
                size = int.from_bytes(head[8:10], "little") if head[6] == 1 else int.from_bytes(head[8:12], "little")
                text = (head[10:] if head[6] == 1 else b"") + fh.read(size - (2 if head[6] == 1 else 0))
            header = ast.literal_eval(text.decode("latin-1"))
            dtype = _DESCR.get(str(header["descr"]).lstrip("<>|="), str(header["descr"]))
            out[name.removesuffix(".npy")] = (dtype, tuple(int(d) for d in header["shape"]))
    return out


def _mismatch(spec: dict[str, Any], dtype: str, shape: tuple[int, ...]) -> str:
    if str(spec.get("dtype")) != dtype:
        return f"it is {dtype}, the input takes {spec.get('dtype')}"
    dims = spec.get("shape") or []
    if len(dims) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape, strict=False)):
        return f"its shape is {list(shape)}, the input takes {dims}"
    return ""
