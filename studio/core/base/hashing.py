"""sha256 of files and bytes, the one digest that names a model source (a file or a folder of files), and the
SHA256 fingerprint text OpenSSH shows for a key."""
from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    """sha256 of the file, or of its first `limit` bytes (all of a shorter file)."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as fh:
        while left is None or left > 0:
            chunk = fh.read(1 << 20 if left is None else min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(key_bytes: bytes) -> str:
    """'SHA256:' and the unpadded base64 of the bytes' sha256: how OpenSSH (and Studio) names a key."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_bytes).digest()).decode().rstrip("=")


def source_digest(files: Iterable[str | os.PathLike]) -> str:
    """sha256 of a one-file source, or of its files' hashes in order (SavedModel folders, external weights)."""
    hashes = [sha256_file(f) for f in files if os.path.isfile(f)]
    return hashes[0] if len(hashes) == 1 else sha256_bytes("".join(hashes).encode())
