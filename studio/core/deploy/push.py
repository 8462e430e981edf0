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
from studio.core.deploy.report import explain, label
from studio.core.deploy.transport import AgentSession, DeviceBusy, DeviceTransport, LinkLost, connect, open_session

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


class Phase(StrEnum):
    """The steps of a push, in order; a fault is reported with the step it hit."""
    CONNECT = "connect"
    UPLOAD = "upload"
    UNPACK = "unpack"
    CHECK = "model check"
    SWITCH = "switch"
    CLEANUP = "cleanup"


ORDER = list(Phase)
UploadHook = Callable[[object, int, int], None]  # (transport, bytes sent, bundle size): tests cut the link here
PhaseHook = Callable[[Phase, DeviceTransport], None]  # called as each step starts: tests cut the link there


@dataclass(frozen=True)
class PushOptions:
    """How one push runs: whether to smoke-test the model on the device, and the progress and cancel hooks."""
    smoke: bool = True
    smoke_timeout: float = SMOKE_TIMEOUT
    progress: DeviceProgress | None = None
    cancel: CancelToken | None = None
    on_upload: UploadHook | None = None
    on_phase: PhaseHook | None = None


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
        self.phase = Phase.CONNECT
        self.running: dict | None = None  # what the device ran when we found it
        self.prepared = False  # the device answered `prepare`: `running` is known
        self.ended = False  # the device's side of the push was already ended (abort), nothing left to resolve

    def report(self, fraction: float, message: str) -> None:
        if self.options.progress:
            self.options.progress(self.device.name, fraction, message)

    def enter(self, phase: Phase) -> None:
        self.phase = phase
        if self.options.on_phase and self.transport is not None:
            self.options.on_phase(phase, self.transport)

    async def connect(self) -> tuple[AgentSession, dict]:
        """Log in, start the agent (it holds the device's lock for the whole push) and ask it to prepare."""
        self.report(0.0, "connecting")
        self.transport = await connect(self.device)
        agent = self.agent = await open_session(self.transport)
        self.enter(Phase.CONNECT)
        prep = await agent.call("prepare", self.manifest["id"], self.bundle_sha, self.size)
        recovered = prep["recovered"]
        if recovered.get("recovered"):
            self.result.recovered = recovered
            self.result.steps.append(f"resolved an interrupted push of {recovered.get('bundle')} (stopped while"
                                     f" {recovered.get('phase')})")
        self.running, self.prepared = prep.get("current"), True
        self.result.previous = self.running["id"] if self.running else None
        return agent, prep

    def unchanged(self) -> PushResult:
        self.result.status, self.result.running = PushStatus.UNCHANGED, label(self.running)
        self.result.message = f"Already runs {self.version}: nothing to do"
        return self.result

    async def upload(self, agent: AgentSession, prep: dict) -> None:
        """Check the free space, then send the bundle, resuming a partial upload whose bytes still match; a bundle
        that is already whole on the device (an earlier push stopped after its upload) is not sent again."""
        self.enter(Phase.UPLOAD)
        part, size = prep["part"], self.size
        if part.get("complete"):
            self.result.resumed_from = size
            self.result.steps.append("the whole bundle was already on the device (sha256 checked): nothing sent")
            return
        if prep["free_bytes"] < self.need(part["size"]):
            await self.disk_full(agent, self.need(0))
        self.cancel.raise_if_cancelled()
        offset = part["size"] if 0 < part["size"] <= size and sha256_file(self.bundle, part["size"]) == part[
            "sha256"] else 0
        self.result.resumed_from = offset
        if offset:
            self.result.steps.append(f"resumed the upload at {offset} of {size} bytes")
        self.report(0.05, "uploading")
        transport = self.transport
        assert transport is not None  # connect() ran
        reached = [offset]

        def uploaded(pos: int) -> None:
            reached[0] = pos
            self.report(0.05 + 0.7 * pos / max(1, size), f"uploading {pos * 100 // max(1, size)}%")
            if self.options.on_upload:
                self.options.on_upload(transport, pos, size)
            self.cancel.raise_if_cancelled()

        remote_part = f"{self.device.dir}/.studio/incoming/{self.bundle_sha}.part"
        try:
            self.result.bytes_sent = await transport.put(self.bundle, remote_part, offset, uploaded)
        except LinkLost:
            raise
        except DeviceError:
            # A full disk shows over SFTP as a bare "Failure": ask the device whether the rest still fits.
            if (await agent.call("space"))["free_bytes"] < size - reached[0]:
                await self.disk_full(agent, self.need(0))
            raise

    def need(self, have: int) -> int:
        return int(self.size * 2.5) + (1 << 20) - have  # the zip, its unpacked copy, and a margin

    async def disk_full(self, agent: AgentSession, need: int) -> None:
        """End the push on the device, its partial upload included (a full disk can stop the app that runs)."""
        free = (await agent.call("abort", self.manifest["id"], self.bundle_sha))["free_bytes"]
        self.ended = True
        raise DeviceError(f"device disk is full: {need / 1e6:.1f} MB needed in {self.device.dir}, "
                          f"{free / 1e6:.1f} MB free (the partial upload was removed)")

    async def unpack_and_check(self, agent: AgentSession) -> None:
        """The device verifies and unpacks the bundle, then (with smoke) runs the model once on it."""
        self.enter(Phase.UNPACK)
        self.report(0.8, "verifying and unpacking on the device")
        await agent.call("install", self.bundle_sha, self.manifest["id"], timeout=300)
        if self.options.smoke:
            self.enter(Phase.CHECK)
            self.report(0.85, "checking the model on the device")
            timeout = self.options.smoke_timeout
            self.result.check = (await agent.call("smoke", self.manifest["id"], timeout,
                                                  timeout=timeout + 30))["check"]
        self.cancel.raise_if_cancelled()

    async def switch(self, agent: AgentSession) -> PushResult:
        """Make the new release `current` in one atomic step; older releases beyond `keep` go."""
        self.enter(Phase.SWITCH)
        self.report(0.95, "switching to the new release")
        await agent.call("activate", self.manifest["id"], self.device.keep)
        return self.installed()

    def installed(self) -> PushResult:
        result = self.result
        result.status, result.running = PushStatus.INSTALLED, f"{self.manifest['name']} {self.version}"
        result.message = f"Installed {self.version}" + (", check passed" if self.options.smoke else
                                                        " (no check was run)")
        self.report(1.0, result.message)
        return result

    async def failed(self, exc: StudioError | asyncio.CancelledError) -> PushResult:
        """The result of a push that stopped: why, in plain words, what the device runs (read back from it, never
        assumed) and what to do."""
        error = Cancelled() if isinstance(exc, asyncio.CancelledError) else exc
        result = self.result
        result.detail = error.message
        state = await self.settle(error)
        if state is not None and state.get("current") and state["current"]["id"] == self.manifest["id"]:
            result.steps.append(f"{'the connection was lost' if isinstance(error, LinkLost) else error.message} at"
                                f" the {self.phase} step, after the switch: asked again, the device runs the new"
                                " release")
            result.detail = None
            return self.installed()
        reason, advice = explain(result.detail)
        if isinstance(error, LinkLost):
            reason = f"{reason} at the {self.phase} step"
        result.running = label(state.get("current")) if state is not None else None
        unsure = state is None and self.prepared and ORDER.index(self.phase) >= ORDER.index(Phase.SWITCH)
        result.message = (f"{'Not confirmed' if unsure else 'Not installed'}: {reason}; {self.claim(state)}. "
                          + advice.format(name=self.device.name, dir=self.device.dir))
        self.report(1.0, result.message)
        return result

    def claim(self, state: dict | None) -> str:
        """What the device runs, said only as far as it is known."""
        before = label(self.running)
        if state is not None:
            now = state.get("current")
            same = self.prepared and (now or {}).get("id") == (self.running or {}).get("id")
            return f"the device {'still ' if same else ''}runs {label(now)}"
        if not self.prepared:
            return "nothing was changed on it"
        if ORDER.index(self.phase) < ORDER.index(Phase.SWITCH):
            return f"it could not be asked again, but the push stopped before the switch, so it still runs {before}"
        return (f"it could not be asked again: it runs {self.manifest['name']} {self.version} if the switch was done,"
                f" else still {before}; see `studio status --device {self.device.name}` once it answers")

    async def settle(self, error: StudioError) -> dict | None:
        """End the push on the device and read back what it runs: over the same session where it still answers,
        else over a new connection (the device's agent resolved the push when its link dropped)."""
        if self.transport is None or (self.agent is None and not isinstance(error, DeviceBusy)):
            return None  # never logged in, or the agent never started: nothing on the device to ask or to end
        if self.agent is not None and not isinstance(error, LinkLost):
            try:
                if not self.ended:  # a full disk keeps no partial upload: the app that runs may need the space
                    drop = self.bundle_sha if "disk is full" in error.message else ""
                    await self.agent.call("abort", self.manifest["id"], drop)
                return await self.agent.call("status", timeout=15)
            except LinkLost as lost:
                self.result.steps.append(f"the connection was lost while ending the push ({lost.message})")
            except DeviceError as exc:
                self.result.steps.append(f"the device could not end the push ({exc.message})")
        return await self.read_back(fresh=self.agent is not None)

    async def read_back(self, fresh: bool) -> dict | None:
        """The device's status from a new unlocked agent session (over a new connection when `fresh`)."""
        transport = self.transport
        try:
            if fresh:
                await self.drop_link()
                transport = self.transport = await connect(self.device)
            assert transport is not None
            reader = await open_session(transport, lock=False)
            try:
                state = await reader.call("status", timeout=15)
            finally:
                await reader.close()
        except StudioError as exc:
            self.result.steps.append(f"could not read the device's state back ({exc.message})")
            return None
        journal = state.get("journal")
        if journal:
            self.result.steps.append(f"the device's journal shows a push of {journal.get('bundle')} stopped while"
                                     f" {journal.get('state')}" + (" (its agent is still finishing that step and"
                                                                    " resolves it)" if state.get("busy") else ""))
        return state

    async def drop_link(self) -> None:
        """Give up the old connection without waiting on it (its agent ends by itself once the link is gone)."""
        self.agent = None
        if self.transport is not None:
            transport, self.transport = self.transport, None
            await transport.close()

    async def cleanup(self) -> None:
        if self.transport is not None and self.result.ok:
            self.enter(Phase.CLEANUP)
        if self.agent is not None:
            await self.agent.close()
        if self.transport is not None:
            await self.transport.close()
        self.result.seconds = round(time.monotonic() - self.started, 2)
