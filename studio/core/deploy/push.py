"""Push a bundle to one device, Mender/RAUC style: verify, lock, check disk, resumable upload, verify on the
device, unpack, smoke-test, then switch `current` atomically. On any failure the previous release stays active."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from studio.core.base.errors import Cancelled, StudioError
from studio.core.base.hashing import sha256_file
from studio.core.base.progress import CancelToken
from studio.core.deploy.inventory import Device, DeviceError
from studio.core.deploy.transport import AgentSession, DeviceTransport, connect, open_session

SMOKE_TIMEOUT = 120.0
DeviceProgress = Callable[[str, float, str], None]  # (device name, fraction, message)


class PushStatus(StrEnum):
    """What one push did to one device."""
    INSTALLED = "installed"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted (another device failed first, or the push was cancelled)


@dataclass
class PushResult:
    device: str
    status: PushStatus
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

    def __post_init__(self):
        self.status = PushStatus(self.status)

    @property
    def ok(self) -> bool:
        return self.status in (PushStatus.INSTALLED, PushStatus.UNCHANGED)

    def to_dict(self) -> dict:
        return asdict(self)


def _label(desc: dict | None) -> str:
    if not desc:
        return "nothing (no release installed)"
    return f"{desc.get('name') or desc['id']} v{desc.get('version')}" if desc.get("version") else desc["id"]


UploadHook = Callable[[object, int, int], None]  # (transport, bytes sent, bundle size): tests cut the link here


@dataclass(frozen=True)
class PushOptions:
    """How one push runs: whether to smoke-test the model on the device, and the progress and cancel hooks."""
    smoke: bool = True
    smoke_timeout: float = SMOKE_TIMEOUT
    progress: DeviceProgress | None = None
    cancel: CancelToken | None = None
    on_upload: UploadHook | None = None


async def push_one(device: Device, bundle: Path, manifest: dict, bundle_sha: str,
                   options: PushOptions = PushOptions()) -> PushResult:
    """One device. Never raises for device trouble: the result says what happened and what the device runs."""
    push = _Push(device, bundle, manifest, bundle_sha, options)
    try:
        agent, prep = await push.connect()
        if prep["unchanged"]:
            return push.unchanged()
        await push.upload(agent, prep)
        await push.unpack_and_check(agent)
        return await push.switch(agent)
    except (StudioError, asyncio.CancelledError) as exc:
        return await push.failed(exc)
    finally:
        await push.cleanup()


class _Push:
    """One push's state across its phases: connect, upload, unpack/check, switch, and cleanup on the way out."""

    def __init__(self, device: Device, bundle: Path, manifest: dict, bundle_sha: str, options: PushOptions):
        self.device, self.bundle, self.manifest, self.bundle_sha, self.options = \
            device, bundle, manifest, bundle_sha, options
        self.cancel = options.cancel or CancelToken()
        self.started = time.monotonic()
        self.size = bundle.stat().st_size
        self.version = f"v{manifest['version']}"
        self.result = PushResult(device.name, PushStatus.FAILED, "", bundle=manifest["id"])
        self.transport: DeviceTransport | None = None
        self.agent: AgentSession | None = None
        self.running: dict | None = None  # what the device ran when we found it

    def report(self, fraction: float, message: str) -> None:
        if self.options.progress:
            self.options.progress(self.device.name, fraction, message)

    async def connect(self) -> tuple[AgentSession, dict]:
        """Log in, start the agent (it holds the device's lock for the whole push) and ask it to prepare."""
        self.report(0.0, "connecting")
        self.transport = await connect(self.device)
        agent = self.agent = await open_session(self.transport)
        prep = await agent.call("prepare", self.manifest["id"], self.bundle_sha, self.size)
        recovered = prep["recovered"]
        if recovered.get("recovered"):
            self.result.recovered = recovered
            self.result.steps.append(f"resolved an interrupted push of {recovered.get('bundle')} (stopped while"
                                     f" {recovered.get('phase')})")
        self.running = prep.get("current")
        self.result.previous = self.running["id"] if self.running else None
        return agent, prep

    def unchanged(self) -> PushResult:
        self.result.status, self.result.running = PushStatus.UNCHANGED, _label(self.running)
        self.result.message = f"Already runs {self.version}: nothing to do"
        return self.result

    async def upload(self, agent: AgentSession, prep: dict) -> None:
        """Check the free space, then send the bundle, resuming a partial upload whose bytes still match."""
        part, size = prep["part"], self.size
        need = int(size * 2.5) + (1 << 20) - part["size"]  # the zip, its unpacked copy, and a margin
        if prep["free_bytes"] < need:
            await agent.call("abort", self.manifest["id"])
            raise DeviceError(f"device disk is full: {need / 1e6:.1f} MB needed in {self.device.dir}, "
                              f"{prep['free_bytes'] / 1e6:.1f} MB free")
        self.cancel.raise_if_cancelled()
        offset = part["size"] if 0 < part["size"] <= size and sha256_file(self.bundle, part["size"]) == part[
            "sha256"] else 0
        self.result.resumed_from = offset
        if offset:
            self.result.steps.append(f"resumed the upload at {offset} of {size} bytes")
        self.report(0.05, "uploading")
        transport = self.transport
        assert transport is not None  # connect() ran

        def uploaded(pos: int) -> None:
            self.report(0.05 + 0.7 * pos / max(1, size), f"uploading {pos * 100 // max(1, size)}%")
            if self.options.on_upload:
                self.options.on_upload(transport, pos, size)
            self.cancel.raise_if_cancelled()

        remote_part = f"{self.device.dir}/.studio/incoming/{self.bundle_sha}.part"
        self.result.bytes_sent = await transport.put(self.bundle, remote_part, offset, uploaded)

    async def unpack_and_check(self, agent: AgentSession) -> None:
        """The device verifies and unpacks the bundle, then (with smoke) runs the model once on it."""
        self.report(0.8, "verifying and unpacking on the device")
        await agent.call("install", self.bundle_sha, self.manifest["id"], timeout=300)
        if self.options.smoke:
            self.report(0.85, "checking the model on the device")
            timeout = self.options.smoke_timeout
            try:
                self.result.check = (await agent.call("smoke", self.manifest["id"], timeout,
                                                      timeout=timeout + 30))["check"]
            except DeviceError:
                await agent.call("abort", self.manifest["id"])
                raise
        self.cancel.raise_if_cancelled()

    async def switch(self, agent: AgentSession) -> PushResult:
        """Make the new release `current` in one atomic step; older releases beyond `keep` go."""
        self.report(0.95, "switching to the new release")
        await agent.call("activate", self.manifest["id"], self.device.keep)
        result = self.result
        result.status, result.running = PushStatus.INSTALLED, f"{self.manifest['name']} {self.version}"
        result.message = f"Installed {self.version}" + (", check passed" if self.options.smoke else
                                                        " (no check was run)")
        self.report(1.0, result.message)
        return result

    async def failed(self, exc: StudioError | asyncio.CancelledError) -> PushResult:
        """The result of a push that stopped: why, in plain words, and what the device still runs."""
        error = Cancelled() if isinstance(exc, asyncio.CancelledError) else exc
        result = self.result
        result.detail = error.message
        if self.running is None and self.agent is not None:
            self.running = await _current_or_none(self.agent)
        result.running = _label(self.running) if self.transport is not None else None
        reason = "stopped by the user" if isinstance(error, Cancelled) else _plain(result.detail)
        still = f"the device still runs {result.running}" if result.running else "nothing was changed on it"
        result.message = f"Not installed: {reason}; {still}"
        self.report(1.0, result.message)
        return result

    async def cleanup(self) -> None:
        self.result.seconds = round(time.monotonic() - self.started, 2)
        if self.agent is not None:
            await self.agent.close()
        if self.transport is not None:
            await self.transport.close()


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
