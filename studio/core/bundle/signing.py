"""Ed25519 keys and signatures for bundles (the `cryptography` library)."""
from __future__ import annotations

import base64
import os
from pathlib import Path

from studio.core.base import hashing
from studio.core.base.errors import StudioError, short


class SigningError(StudioError):
    """A key is missing or malformed, or a signature does not match."""


def new_keypair(path: str | os.PathLike) -> tuple[Path, Path]:
    """Write an Ed25519 private key at PATH (mode 600, PEM) and its public key at PATH.pub; refuse to overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(path)
    public = Path(f"{private}.pub")
    for p in (private, public):
        if p.exists():
            raise SigningError("already exists; Studio never overwrites a key", p)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private, 0o600)  # in case a umask widened it
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def load_private(path: str | os.PathLike):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except FileNotFoundError:
        raise SigningError("signing key not found", p) from None
    except OSError as exc:
        raise SigningError(f"cannot read the signing key ({short(exc)})", p) from None
    except (ValueError, TypeError) as exc:
        raise SigningError(f"is not a PEM private key ({exc})", p) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("is not an Ed25519 key (make one with `studio keys new`)", p)
    return key


def load_public(path: str | os.PathLike):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    p = Path(path)
    try:
        data = p.read_bytes()
        key = serialization.load_ssh_public_key(data) if data.startswith(b"ssh-ed25519") else \
            serialization.load_pem_public_key(data)
    except FileNotFoundError:
        raise SigningError("public key not found", p) from None
    except OSError as exc:
        raise SigningError(f"cannot read the public key ({short(exc)})", p) from None
    except (ValueError, TypeError) as exc:
        raise SigningError(f"is not a public key ({exc})", p) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("is not an Ed25519 public key", p)
    return key


def fingerprint(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashing.fingerprint(raw)


def sign(private_key, data: bytes) -> bytes:
    """A base64 text signature (Ed25519 is deterministic: same key and data, same bytes)."""
    return base64.b64encode(private_key.sign(data)) + b"\n"


def verify(public_key, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(base64.b64decode(signature.strip(), validate=True), data)
        return True
    except (InvalidSignature, ValueError):
        return False
