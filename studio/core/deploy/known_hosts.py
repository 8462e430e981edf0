"""Studio's own known_hosts (config dir): a host key is trusted only after the user checked its fingerprint."""
from __future__ import annotations

from pathlib import Path

from studio.core.base import atomic, hashing
from studio.core.base.paths import config_dir


def path() -> Path:
    return config_dir() / "known_hosts"


def host_id(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key) -> str:
    """OpenSSH's SHA256 fingerprint of an asyncssh public key."""
    return hashing.fingerprint(key.public_data)


def lookup(host: str, port: int) -> str | None:
    """The trusted key line ('ssh-ed25519 AAAA...') for host:port, if any."""
    p = path()
    if not p.is_file():
        return None
    want = host_id(host, port)
    for line in p.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 3 and want in parts[0].split(","):
            return f"{parts[1]} {parts[2]}"
    return None


def trusted_fingerprint(host: str, port: int) -> str | None:
    """The fingerprint of the key trusted for host:port, if any (to show beside a changed one)."""
    line = lookup(host, port)
    if line is None:
        return None
    import asyncssh

    return fingerprint(asyncssh.import_public_key(line))


def trust(host: str, port: int, key) -> None:
    """Pin `key` for host:port, replacing an older entry."""
    p = path()
    lines = p.read_text(encoding="utf-8").splitlines() if p.is_file() else []
    want = host_id(host, port)
    lines = [line for line in lines if want not in line.split()[0].split(",")] if lines else []
    lines.append(f"{want} {key.export_public_key('openssh').decode().strip()}")
    atomic.write_text(p, "\n".join(lines) + "\n")
