"""How a dataset becomes a model's inputs: one array per input, the recipe's preprocessing, the layout where only
one reading fits, and the shapes the data resolves (never a silent reshape)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studio.core.base.errors import DataError
from studio.core.data.datasets import Dataset
from studio.core.recipe.recipe import Layout, Preprocess
from studio.core.tensors.samples import Samples
from studio.core.tensors.shapes import BatchMode, ShapeRequest, batch_mode, resolve
from studio.core.tensors.spec import TensorInfo

Target = tuple[int | None, ...]  # one sample's dims; None where the model leaves a dim open


@dataclass(frozen=True, eq=False)
class Fitted:
    """A dataset as model inputs, with what was done to make it fit (the report lists these)."""
    samples: Samples
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class _Input:
    array: np.ndarray
    constant: bool
    run_shape: tuple[int, ...]
    note: str = ""


def fit(ds: Dataset, inputs: Sequence[TensorInfo], request: ShapeRequest = ShapeRequest(),
        pre: Preprocess = Preprocess(), limit: int | None = None) -> Fitted:
    """The dataset's samples for every input, at shapes resolved from the user's request, the data and the model."""
    request.check_names(inputs, ds.source)
    values = _values_by_input(ds, inputs)
    fitted: list[_Input] = []
    for t in inputs:
        given = request.lookup(t.name)
        declared = TensorInfo(t.name, list(given), t.dtype, t.quantization) if given is not None else t
        fitted.append(_fit_one(values[t.name], declared, batch_mode(t.shape), pre if len(inputs) == 1 else
                               Preprocess(), ds.source))
    fitted = _same_count(fitted, inputs, ds.source)
    shapes = resolve(inputs, request, {t.name: f.run_shape for t, f in zip(inputs, fitted, strict=True)}, ds.source)
    arrays = tuple(_cast(f.array, t) for f, t in zip(fitted, inputs, strict=True))
    samples = Samples(shapes, arrays, tuple(f.constant for f in fitted))
    return Fitted(samples.head(limit) if limit else samples, tuple(f.note for f in fitted if f.note))


def _values_by_input(ds: Dataset, inputs: Sequence[TensorInfo]) -> dict[str, np.ndarray]:
    names = [t.name for t in inputs]
    if len(inputs) == 1:
        if ds.x is not None:
            return {names[0]: ds.x}
        if names[0] in ds.named:
            return {names[0]: ds.named[names[0]]}
        if len(ds.named) == 1:
            return {names[0]: next(iter(ds.named.values()))}
    arrays = ds.arrays
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"has no array for input '{missing[0]}' (found: {', '.join(arrays) or 'none'}); a model with"
                        f" several inputs needs one array per input, named {', '.join(names)}", ds.source)
    return {n: arrays[n] for n in names}


def shapes_from_data(ds: Dataset, names: Sequence[str]) -> ShapeRequest:
    """Shapes and dtypes for inputs the model records none for (a PyTorch module), from the .npz arrays named after
    them: an array of as many samples as the dataset holds is one value per sample (a run takes one: [1, ...]), any
    other is the input's exact value; integer arrays keep their dtype (uint8 ones are images: float32)."""
    arrays = {n: ds.arrays[n] for n in names if n in ds.arrays}
    count = len(ds)
    entries, dtypes = [], []
    for name, a in arrays.items():
        per_sample = a.ndim >= 1 and len(a) == count
        entries.append((name, (1, *a.shape[1:]) if per_sample else tuple(a.shape)))
        dtypes.append((name, a.dtype.name if a.dtype.kind in "ib" else "float32"))
    return ShapeRequest(tuple(entries), tuple(dtypes))


def _same_count(fitted: list[_Input], inputs: Sequence[TensorInfo], source: str) -> list[_Input]:
    """Every input with samples has as many as the others: a single sample at an input's exact shape (a state
    [1, 1, 64] given once) is a constant for all; any other difference is an error, never a silent cut."""
    counts = [len(f.array) for f in fitted if not f.constant]
    if len(set(counts)) <= 1:
        return fitted
    most = max(counts)
    out = []
    for f, t in zip(fitted, inputs, strict=True):
        if not f.constant and len(f.array) != most:
            if len(f.array) == 1 and tuple(f.array.shape) == f.run_shape:
                f = _Input(f.array, True, f.run_shape)
            else:
                raise DataError(f"input '{t.name}' has {len(f.array)} samples, another input has {most}: give every"
                                " input the same number (or one value at the input's exact shape)", source)
        out.append(f)
    return out


def _fit_one(a: np.ndarray, t: TensorInfo, mode: BatchMode, pre: Preprocess, source: str) -> _Input:
    """One input's array: a constant at the input's exact shape, or samples [N, ...] fitted to one sample's dims.
    `mode` is the model's own (a shape the user gave fixes the dims, not whether the input has a batch dim)."""
    dims: Target = tuple(d if isinstance(d, int) else None for d in t.shape)
    if mode == BatchMode.NONE and _matches(a.shape, dims):
        return _Input(a, True, tuple(a.shape))
    sample: Target = dims[1:] if mode != BatchMode.NONE else dims
    if a.ndim == len(sample) + 2 and mode == BatchMode.FIXED and a.shape[1] == dims[0]:
        a = a[:, 0]  # samples stored with the model's batch of one each
    if a.ndim < 1:
        raise DataError(f"input '{t.name}' {t.shape_text()} needs samples, the data gives a single value", source)
    x = _preprocess(a, pre, source) if _is_float(t) else a
    x, note = _layout(x, sample, t, source)
    run = (*(() if mode == BatchMode.NONE else (1 if dims[0] is None else dims[0],)), *x.shape[1:])
    return _Input(x, False, tuple(int(d) for d in run), note)


def _layout(x: np.ndarray, sample: Target, t: TensorInfo, source: str) -> tuple[np.ndarray, str]:
    """The samples as they are when they fit; else the one reading that does (channels moved, a channel axis of 1
    added, flattened); else a DataError saying what is needed."""
    if _matches(x.shape[1:], sample):
        return x, ""
    readings = [(r, note) for r, note in _readings(x, sample) if _matches(r.shape[1:], sample)]
    if len(readings) == 1:
        return readings[0][0], f"input '{t.name}': {readings[0][1]}"
    want = "[" + ", ".join("?" if d is None else str(d) for d in sample) + "]"
    why = "several readings fit; set layout in the recipe's preprocessing" if readings else (
        "set resize or layout in the recipe's preprocessing, or give samples of that shape")
    raise DataError(f"input '{t.name}' {t.shape_text()} needs samples of {want}; the data gives samples of"
                    f" {list(x.shape[1:])}: {why}", source)


def _readings(x: np.ndarray, sample: Target) -> list[tuple[np.ndarray, str]]:
    s = x.shape[1:]
    out: list[tuple[np.ndarray, str]] = []
    if len(s) == 3 and len(sample) == 3:
        out.append((x.transpose(0, 3, 1, 2), f"channels-last samples {list(s)} transposed to channels-first"))
        out.append((x.transpose(0, 2, 3, 1), f"channels-first samples {list(s)} transposed to channels-last"))
    if len(s) == 2 and len(sample) == 3:
        out.append((x[:, None], f"samples {list(s)} given a channel axis of 1 (channels-first)"))
        out.append((x[..., None], f"samples {list(s)} given a channel axis of 1 (channels-last)"))
    if len(sample) == 1 and len(s) > 1:
        out.append((x.reshape(len(x), -1), f"samples {list(s)} flattened to {math.prod(s)} values"))
    if len(sample) == len(s) + 1 and sample[-1] == 1:
        out.append((x[..., None], f"samples {list(s)} given a last axis of 1"))
    if len(sample) == len(s) - 1 and len(s) >= 2 and s[-1] == 1:
        out.append((x[..., 0], f"samples {list(s)} without their last axis of 1"))
    return out


def _matches(shape: Sequence[int], dims: Target) -> bool:
    return len(shape) == len(dims) and all(d is None or d == s for s, d in zip(shape, dims, strict=True))


def _is_float(t: TensorInfo) -> bool:
    return t.quantization is not None or not (np.dtype(t.dtype).kind in "iub" if t.dtype in np.sctypeDict else False)


def _cast(a: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Float inputs (and quantized ones, which the runner quantizes) as float32; integer inputs in their own type."""
    return a.astype(np.float32 if _is_float(t) else np.dtype(t.dtype), copy=False)  # no copy where it is already


def _preprocess(a: np.ndarray, pre: Preprocess, source: str) -> np.ndarray:
    """The recipe's preprocessing: layout change, scale, then mean/std per channel."""
    x = a.astype(np.float32, copy=False)  # every step below makes a new array: the data itself is never changed
    if pre.layout == Layout.NCHW and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    elif pre.layout == Layout.NHWC and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    if pre.scale != 1.0:
        x = x * np.float32(pre.scale)
    if pre.mean or pre.std:
        axis = 1 if pre.layout == Layout.NCHW else -1
        n = len(pre.mean or pre.std)
        if x.ndim < 2 or (x.shape[axis] != n and n != 1):
            raise DataError(f"mean/std have {n} channels but samples have shape {list(x.shape[1:])}", source)
        bshape = [1] * x.ndim
        bshape[axis] = n if n > 1 else 1
        if pre.mean:
            x = x - np.asarray(pre.mean, np.float32).reshape(bshape)
        if pre.std:
            x = x / np.asarray(pre.std, np.float32).reshape(bshape)
    return x
