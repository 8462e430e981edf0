"""sha256 of files and bytes, and the one digest that names a model source (a file or a folder of files)."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_digest(files: Iterable[str | os.PathLike]) -> str:
    """sha256 of a one-file source, or of its files' hashes in order (SavedModel folders, external weights)."""
    hashes = [sha256_file(f) for f in files if os.path.isfile(f)]
    return hashes[0] if len(hashes) == 1 else sha256_bytes("".join(hashes).encode())
