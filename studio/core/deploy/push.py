"""Push a bundle to one device, Mender/RAUC style: verify, lock, check disk, resumable upload, verify on the
device, unpack, smoke-test, then switch `current` atomically. On any failure the previous release stays active."""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio.core.base.errors import Cancelled, StudioError
from studio.core.base.progress import CancelToken
from studio.core.deploy.inventory import Device, DeviceError
from studio.core.deploy.transport import AgentSession, connect, open_session

SMOKE_TIMEOUT = 120.0
DeviceProgress = Callable[[str, float, str], None]  # (device name, fraction, message)


@dataclass
class PushResult:
    device: str
    status: str  # "installed" | "unchanged" | "failed" | "skipped"
    message: str  # plain words for a field technician
    bundle: str | None = None
    previous: str | None = None
    running: str | None = None  # what the device runs after this push (name version)
    detail: str | None = None  # the technical reason, for engineers
    bytes_sent: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    check: dict | None = None
    recovered: dict | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "unchanged")

    def to_dict(self) -> dict:
        return asdict(self)


def _label(desc: dict | None) -> str:
    if not desc:
        return "nothing (no release installed)"
    return f"{desc.get('name') or desc['id']} v{desc.get('version')}" if desc.get("version") else desc["id"]


def sha256_prefix(path: Path, n: int) -> str:
    h = hashlib.sha256()
    left = n
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


async def push_one(device: Device, bundle: Path, manifest: dict, bundle_sha: str, *, smoke: bool = True,
                   smoke_timeout: float = SMOKE_TIMEOUT, progress: DeviceProgress | None = None,
                   cancel: CancelToken | None = None,
                   on_upload: Callable[[object, int, int], None] | None = None) -> PushResult:
    """One device. Never raises for device trouble: the result says what happened and what the device runs."""
    started = time.monotonic()
    report = (lambda f, m: progress(device.name, f, m)) if progress else (lambda f, m: None)
    result = PushResult(device.name, "failed", "", bundle=manifest["id"])
    version = f"v{manifest['version']}"
    size = bundle.stat().st_size
    t = None
    agent: AgentSession | None = None
    running = None
    try:
        report(0.0, "connecting")
        t = await connect(device)
        agent = await open_session(t)  # one process on the device for the whole push; it holds the lock
        prep = await agent.call("prepare", manifest["id"], bundle_sha, size)
        recovered = prep["recovered"]
        if recovered.get("recovered"):
            result.recovered = recovered
            result.steps.append(f"resolved an interrupted push of {recovered.get('bundle')} (stopped while"
                                f" {recovered.get('phase')})")
        running = prep.get("current")
        result.previous = running["id"] if running else None
        if prep["unchanged"]:
            result.status, result.running = "unchanged", _label(running)
            result.message = f"Already runs {version}: nothing to do"
            return result
        part = prep["part"]
        need = int(size * 2.5) + (1 << 20) - part["size"]  # the zip, its unpacked copy, and a margin
        if prep["free_bytes"] < need:
            await agent.call("abort", manifest["id"])
            raise DeviceError(f"device disk is full: {need / 1e6:.1f} MB needed in {device.dir}, "
                              f"{prep['free_bytes'] / 1e6:.1f} MB free")
        _check(cancel)
        offset = part["size"] if 0 < part["size"] <= size and sha256_prefix(bundle, part["size"]) == part[
            "sha256"] else 0
        result.resumed_from = offset
        if offset:
            result.steps.append(f"resumed the upload at {offset} of {size} bytes")
        report(0.05, "uploading")

        def uploaded(pos: int) -> None:
            report(0.05 + 0.7 * pos / max(1, size), f"uploading {pos * 100 // max(1, size)}%")
            if on_upload:
                on_upload(t, pos, size)
            _check(cancel)

        remote_part = f"{device.dir}/.studio/incoming/{bundle_sha}.part"
        result.bytes_sent = await t.put(bundle, remote_part, offset, uploaded)
        report(0.8, "verifying and unpacking on the device")
        await agent.call("install", bundle_sha, manifest["id"], timeout=300)
        if smoke:
            report(0.85, "checking the model on the device")
            try:
                result.check = (await agent.call("smoke", manifest["id"], smoke_timeout,
                                                 timeout=smoke_timeout + 30))["check"]
            except DeviceError:
                await agent.call("abort", manifest["id"])
                raise
        _check(cancel)
        report(0.95, "switching to the new release")
        await agent.call("activate", manifest["id"], device.keep)
        result.status, result.running = "installed", f"{manifest['name']} {version}"
        result.message = f"Installed {version}" + (", check passed" if smoke else " (no check was run)")
        report(1.0, result.message)
        return result
    except (StudioError, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            exc = Cancelled()
        result.detail = exc.message if isinstance(exc, StudioError) else str(exc)
        if running is None and agent is not None:
            running = await _current_or_none(agent)
        result.running = _label(running) if t is not None else None
        reason = "stopped by the user" if isinstance(exc, Cancelled) else _plain(result.detail)
        still = f"the device still runs {result.running}" if result.running else "nothing was changed on it"
        result.message = f"Not installed: {reason}; {still}"
        report(1.0, result.message)
        return result
    finally:
        result.seconds = round(time.monotonic() - started, 2)
        if agent is not None:
            await agent.close()
        if t is not None:
            await t.close()


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise Cancelled()


async def _current_or_none(agent: AgentSession):
    try:
        return (await agent.call("status", timeout=15)).get("current")
    except StudioError:
        return None


PLAIN = [("disk is full", "device disk is full"), ("HOST KEY HAS CHANGED", "the device's identity (host key) has"
                                                                           " changed"),
         ("unknown host key", "the device is not trusted yet"), ("cannot reach", "the device cannot be reached"),
         ("did not answer", "the device stopped answering"), ("lost the connection", "the connection was lost"),
         ("another push", "another push to this device is in progress"),
         ("model check", "the model check failed on the device"), ("refused the login", "the device refused the login")]


def _plain(detail: str) -> str:
    """The reason as a field technician reads it: no paths, no library names."""
    for marker, words in PLAIN:
        if marker in detail:
            return words
    text = detail.split(" (")[0].split("; ")[0]
    return text[:1].lower() + text[1:] if text else "unknown error"
