"""The publisher keys the user trusts (`studio keys trust K.pub`): trusted_keys.txt beside the devices inventory, one
'ed25519 BASE64 LABEL' line per key. `verify` checks a signature against them when no --pubkey is given."""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.base import atomic
from studio.core.base.paths import config_dir
from studio.core.bundle import signing


@dataclass(frozen=True)
class TrustedKey:
    fingerprint: str
    label: str
    key: Any  # cryptography's Ed25519PublicKey


def trusted_keys_path() -> Path:
    return config_dir() / "trusted_keys.txt"


def _raw(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load() -> list[TrustedKey]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = trusted_keys_path()
    if not path.is_file():
        return []
    keys = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        data, _, label = rest.partition(" ")
        try:
            if kind != "ed25519":
                raise ValueError(f"unknown key kind '{kind}'")
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise signing.SigningError(f"line {number} is not a trusted key ({exc})", path) from None
        keys.append(TrustedKey(signing.fingerprint(key), label, key))
    return keys


def _save(keys: list[TrustedKey]) -> None:
    lines = [f"ed25519 {base64.b64encode(_raw(t.key)).decode()} {t.label}" for t in keys]
    atomic.write_text(trusted_keys_path(), "".join(f"{line}\n" for line in lines))


def trust(pubkey: str | os.PathLike) -> TrustedKey:
    """Add the public key file's key (labelled with the file name); a key already trusted is kept as it was."""
    key = signing.load_public(pubkey)
    entry = TrustedKey(signing.fingerprint(key), Path(pubkey).name.replace(" ", "_"), key)
    keys = load()
    if all(t.fingerprint != entry.fingerprint for t in keys):
        _save([*keys, entry])
    return entry


def untrust(fingerprint: str) -> TrustedKey:
    keys = load()
    gone = [t for t in keys if t.fingerprint == fingerprint]
    if not gone:
        raise signing.SigningError(f"no trusted key has the fingerprint {fingerprint} (see `studio keys list`)")
    _save([t for t in keys if t.fingerprint != fingerprint])
    return gone[0]
