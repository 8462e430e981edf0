"""Inspections kept between commands and sessions. An ONNX or TFLite file inspected once (with its runtime check) is
read back, without starting a worker, while the file, its runtime, the parser and Studio's own code are unchanged.
A file is unchanged when its size, modification and change times and inode are (as git's index judges a file);
a library or Studio by the same marks of its code. Anything else inspects again: a file that failed, one whose
runtime crashed (that may not happen twice), and every other format (their inspection can run the user's code)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import pickle
import sys
from pathlib import Path

from studio.core.base import atomic
from studio.core.base.paths import cache_dir
from studio.core.inspect.formats import Format, InspectOptions
from studio.core.inspect.modelinfo import ModelInfo

MAX_ENTRIES = 256
_LIBRARIES = {Format.ONNX: ("onnx", "onnxruntime"), Format.TFLITE: ("ai_edge_litert",)}
_ENTRY_VERSION = 1


def lookup(path: str, fmt: Format, options: InspectOptions) -> ModelInfo | None:
    """The kept inspection of `path`, if every file it read is as it was then."""
    key = _key(path, fmt, options)
    if key is None:
        return None
    try:
        marks, info = pickle.loads((_folder() / key).read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError):
        return None  # none kept, or written by another Studio: inspect again
    if not isinstance(info, ModelInfo) or marks != [_mark(f) for f in info.files]:
        return None
    with contextlib.suppress(OSError):
        os.utime(_folder() / key)  # recently used: kept longest
    return info


def store(path: str, fmt: Format, options: InspectOptions, info: ModelInfo) -> None:
    """Keep the inspection (never one whose runtime crashed); a cache that cannot be written is no error."""
    key = _key(path, fmt, options)
    if key is None or any(p.code == "runtime-crashed" for p in info.problems):
        return
    with contextlib.suppress(OSError, pickle.PicklingError):
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(folder / key, pickle.dumps(([_mark(f) for f in info.files], info)))
        _trim(folder)


def _key(path: str, fmt: Format, options: InspectOptions) -> str | None:
    if fmt not in _LIBRARIES:
        return None
    try:
        mark = _mark(path)
    except OSError:
        return None
    parts = (_ENTRY_VERSION, path, os.path.realpath(path), mark, repr(options), _code_marks(fmt))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _mark(path: str) -> tuple:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


@functools.cache
def _code_marks(fmt: Format) -> tuple:
    """What says the inspection's code is unchanged: Python, the format's libraries and Studio's core modules."""
    import studio

    marks: list = [sys.version, getattr(studio, "__version__", "")]
    for name in _LIBRARIES[fmt]:
        spec = importlib.util.find_spec(name)
        marks.append((name, _mark(spec.origin) if spec and spec.origin else None))
    core = Path(studio.__file__).parent / "core"
    for folder, _, files in sorted(os.walk(core)):
        marks.extend((f, _mark(os.path.join(folder, f))[:2]) for f in sorted(files) if f.endswith(".py"))
    return tuple(marks)


def _folder() -> Path:
    return cache_dir() / "inspections"


def _trim(folder: Path) -> None:
    """Keep the MAX_ENTRIES most recently used."""
    entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)
