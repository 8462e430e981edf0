"""Push one bundle to many devices: bounded concurrency, canaries first, stop when failures pass --max-fail."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.base.hashing import sha256_file
from studio.core.base.progress import CancelToken
from studio.core.bundle.bundle import verify_bundle
from studio.core.deploy.inventory import Device
from studio.core.deploy.push import DeviceProgress, PushOptions, PushResult, PushStatus, push_one
from studio.core.deploy.transport import drive

log = logging.getLogger(__name__)


@dataclass
class FleetResult:
    bundle: str
    results: list[PushResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet push spreads over its devices; `push` says how each device's push runs."""
    concurrency: int = 4
    canary: int = 0  # the first N devices go first; the rest only when all of them succeed
    max_fail: float | None = None  # stop starting pushes once this percentage of the fleet has failed
    push: PushOptions = field(default_factory=PushOptions)


def push(bundle: str | Path, devices: list[Device], *, concurrency: int = 4, canary: int = 0,
         max_fail: float | None = None, smoke: bool = True, pubkey: str | None = None,
         progress: DeviceProgress | None = None, cancel: CancelToken | None = None, on_upload=None,
         on_phase=None) -> FleetResult:
    """Verify the bundle locally (a corrupt bundle never leaves this machine), then push it device by device."""
    bundle = Path(bundle)
    manifest = verify_bundle(bundle, pubkey).manifest
    sha = sha256_file(bundle)
    options = FleetOptions(concurrency, canary, max_fail,
                           PushOptions(smoke=smoke, progress=progress, cancel=cancel, on_upload=on_upload,
                                       on_phase=on_phase))
    results = drive(_fleet(bundle, manifest, sha, devices, options))
    return FleetResult(manifest["id"], results)


async def _fleet(bundle: Path, manifest: dict, sha: str, devices: list[Device],
                 options: FleetOptions) -> list[PushResult]:
    done: dict[str, PushResult] = {}
    stop_reason: list[str] = []
    cancel, max_fail = options.push.cancel, options.max_fail

    async def one(device: Device) -> None:
        if stop_reason or (cancel is not None and cancel.cancelled):
            reason = stop_reason[0] if stop_reason else "stopped by the user"
            done[device.name] = PushResult(device.name, PushStatus.SKIPPED, f"Not attempted: {reason}; nothing was"
                                           " changed on it. Push again once that is resolved", bundle=manifest["id"])
            return
        done[device.name] = await _guarded(device, bundle, manifest, sha, options.push)
        attempted = [r for r in done.values() if r.status is not PushStatus.SKIPPED]
        failed = sum(1 for r in attempted if not r.ok)
        if max_fail is not None and attempted and failed * 100 / len(devices) > max_fail and not stop_reason:
            stop_reason.append(f"the failure rate passed --max-fail {max_fail:g}%")

    canaries, rest = devices[:options.canary], devices[options.canary:]
    if canaries:
        await asyncio.gather(*(one(d) for d in canaries))
        if any(not done[d.name].ok for d in canaries) and not stop_reason:
            stop_reason.append("a canary device failed")
    sem = asyncio.Semaphore(max(1, options.concurrency))

    async def bounded(device: Device) -> None:
        async with sem:
            await one(device)

    await asyncio.gather(*(bounded(d) for d in rest))
    return [done[d.name] for d in devices]


async def _guarded(device: Device, bundle: Path, manifest: dict, sha: str, options: PushOptions) -> PushResult:
    """push_one, and should it ever raise (a bug, not device trouble), still one line for this device so the fleet's
    summary is printed for every device."""
    try:
        return await push_one(device, bundle, manifest, sha, options)
    except Exception as exc:  # one device's unexpected error must not hide the other devices' results
        log.debug("push to %s failed unexpectedly", device.name, exc_info=True)
        return PushResult(device.name, PushStatus.FAILED, "Not installed: Studio hit an internal error; what the device"
                          f" runs was not checked. Run `studio status --device {device.name}`, then push again",
                          bundle=manifest["id"], detail=f"{type(exc).__name__}: {exc}")
