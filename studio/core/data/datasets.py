"""Datasets for calibration, fine-tuning and evaluation: .npz files and image folders, and how samples become
model inputs (the recipe's preprocessing: by default only reshape and cast, no scaling)."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.core.base.errors import DataError, short

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Dataset:
    x: np.ndarray | None  # [N, ...] raw samples: images as uint8 HxW or HxWxC, or any array; None: named arrays only
    y: np.ndarray | None  # [N] integer class labels, [N, ...] regression targets, or None (label-free)
    labels: list[str] | None  # class names, when known
    source: str
    kind: str  # "npz" | "images"
    named: dict[str, np.ndarray] = field(default_factory=dict)  # an .npz's arrays named after model inputs

    def __len__(self) -> int:
        if self.x is not None:
            return len(self.x)
        return max((len(a) for a in self.named.values() if a.ndim), default=1)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array that can feed a model input, by name: an .npz's `x` counts as one (an input may be called x)."""
        return {**({} if self.x is None else {"x": self.x}), **self.named}

    @property
    def labelled(self) -> bool:
        return self.y is not None

    @property
    def classification(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)

    def head(self, n: int) -> Dataset:
        return Dataset(None if self.x is None else self.x[:n], None if self.y is None else self.y[:n], self.labels,
                       self.source, self.kind, self.named)


def _labels_file(folder: Path) -> list[str] | None:
    for name in ("labels.txt", "classes.txt"):
        f = folder / name
        if f.is_file():
            return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return None


def _load_npz(path: Path, limit: int | None) -> Dataset:
    if not zipfile.is_zipfile(path):
        raise DataError("is not a readable .npz file (an .npz is a zip archive of .npy arrays, as numpy.savez writes"
                        " it)", path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            named = {k: npz[k] for k in npz.files if k not in ("x", "y", "labels")}
            if "x" not in npz.files and not named:
                raise DataError("has no array named 'x' and no arrays named after the model's inputs (found: "
                                f"{', '.join(npz.files) or 'none'})", path)
            x = npz["x"] if "x" in npz.files else None
            y = npz["y"] if "y" in npz.files else None
            labels = [str(v) for v in npz["labels"]] if "labels" in npz.files else None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"is not a readable .npz file ({short(exc)})", path) from None
    if x is not None and (x.ndim < 1 or len(x) == 0):
        raise DataError(f"'x' must hold at least one sample with a shape [N, ...], found {list(x.shape)}", path)
    if y is not None and x is not None and len(y) != len(x):
        raise DataError(f"'x' has {len(x)} samples but 'y' has {len(y)}", path)
    if limit:
        x, y = None if x is None else x[:limit], None if y is None else y[:limit]
    return Dataset(x, y, labels, str(path), "npz", named)


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
