"""Datasets for calibration, fine-tuning and evaluation: .npz files and image folders, and how samples become
model inputs (the recipe's preprocessing: by default only reshape and cast, no scaling)."""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.base.errors import DataError
from studio.core.recipe.recipe import Layout, Preprocess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Dataset:
    x: np.ndarray  # [N, ...] raw samples: images as uint8 HxW or HxWxC, or any array
    y: np.ndarray | None  # [N] integer class labels, [N, ...] regression targets, or None (label-free)
    labels: list[str] | None  # class names, when known
    source: str
    kind: str  # "npz" | "images"

    def __len__(self) -> int:
        return len(self.x)

    @property
    def labelled(self) -> bool:
        return self.y is not None

    @property
    def classification(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)

    def head(self, n: int) -> Dataset:
        return Dataset(self.x[:n], None if self.y is None else self.y[:n], self.labels, self.source, self.kind)


def _labels_file(folder: Path) -> list[str] | None:
    for name in ("labels.txt", "classes.txt"):
        f = folder / name
        if f.is_file():
            return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return None


def _load_npz(path: Path, limit: int | None) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz.files:
                raise DataError(f"has no array named 'x' (found: {', '.join(npz.files) or 'none'})", path)
            x = npz["x"]
            y = npz["y"] if "y" in npz.files else None
            labels = [str(v) for v in npz["labels"]] if "labels" in npz.files else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"is not a readable .npz file ({exc})", path) from None
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"'x' must hold at least one sample with a shape [N, ...], found {list(x.shape)}", path)
    if y is not None and len(y) != len(x):
        raise DataError(f"'x' has {len(x)} samples but 'y' has {len(y)}", path)
    if limit:
        x, y = x[:limit], None if y is None else y[:limit]
    return Dataset(x, y, labels, str(path), "npz")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            im = opened.convert("L") if opened.mode in ("L", "1", "P", "I;16") else opened.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"is not a readable image ({exc})", path) from None


def _load_images(folder: Path, limit: int | None, resize: tuple[int, int] | None) -> Dataset:
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int | None]] = []
    labels = _labels_file(folder)
    if classes:
        names = labels or classes
        missing = [c for c in classes if c not in names]
        if missing:
            raise DataError(f"class folder '{missing[0]}' is not listed in labels.txt", folder)
        for c in classes:
            files += [(f, names.index(c)) for f in sorted((folder / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        labels = names
    else:
        files = [(f, None) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError("holds no images (expected class subfolders of .png/.jpg files, or images directly)", folder)
    if limit:
        step = max(1, len(files) // limit)  # spread across classes instead of taking the first class only
        files = files[::step][:limit]
    images = []
    for f, _ in files:
        img = _read_image(f)
        if resize is not None:
            img = np.asarray(Image.fromarray(img).resize((resize[1], resize[0]), Image.Resampling.BILINEAR))
        images.append(img)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images have different sizes ({', '.join(map(str, sorted(shapes)[:3]))}); set resize in"
                        " the recipe's preprocessing", folder)
    y = np.array([c for _, c in files], dtype=np.int64) if classes else None
    return Dataset(np.stack(images), y, labels, str(folder), "images")


def load_dataset(path: str | os.PathLike, limit: int | None = None, resize: tuple[int, int] | None = None) -> Dataset:
    """A dataset from an .npz (x, optional y and labels) or an image folder (class subfolders, or unlabelled)."""
    p = Path(path)
    if not p.exists():
        raise DataError("dataset not found", p)
    if p.is_dir():
        return _load_images(p, limit, resize)
    if p.suffix.lower() == ".npz":
        return _load_npz(p, limit)
    raise DataError("unsupported dataset: expected an .npz file with 'x' (and optional 'y') or a folder of images", p)


def prepare(samples: np.ndarray, shape: tuple[int, ...], pre: Preprocess, source: str = "") -> np.ndarray:
    """Turn raw samples [N, ...] into a float32 batch [N, *shape[1:]] for a model input of `shape`.

    Order: layout change, scale, mean/std, then reshape. Casting to an integer input type (with its quantization)
    is the runner's job, so callers can feed the same batch to a float and a quantized model."""
    x = samples.astype(np.float32)
    if pre.layout == Layout.NCHW and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    elif pre.layout == Layout.NHWC and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    if pre.scale != 1.0:
        x = x * np.float32(pre.scale)
    if pre.mean or pre.std:
        axis = 1 if pre.layout == Layout.NCHW else -1
        bshape = [1] * x.ndim
        n = len(pre.mean or pre.std)
        if x.ndim < 2 or (x.shape[axis] != n and n != 1):
            raise DataError(f"mean/std have {n} channels but samples have shape {list(x.shape[1:])}", source)
        bshape[axis] = n if n > 1 else 1
        if pre.mean:
            x = x - np.asarray(pre.mean, np.float32).reshape(bshape)
        if pre.std:
            x = x / np.asarray(pre.std, np.float32).reshape(bshape)
    per_sample = math.prod(shape[1:])
    if math.prod(x.shape[1:]) != per_sample:
        raise DataError(f"samples have shape {list(samples.shape[1:])} ({math.prod(samples.shape[1:])} values) but"
                        f" the model input {list(shape)} needs {per_sample}: set resize or layout in the recipe's"
                        " preprocessing", source)
    return x.reshape((len(x), *tuple(shape[1:])))


def synthetic(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """Random stand-in inputs when the user gave no data (the report says so)."""
    return np.random.default_rng(seed).standard_normal((n, *tuple(shape[1:]))).astype(np.float32)
