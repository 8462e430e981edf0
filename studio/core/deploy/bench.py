"""On-device latency for the sweep: `studio sweep --device NAME[,NAME...]` or `--device-tag T`, a pool of devices in
which each device times one candidate at a time (a board timing two models at once times neither)."""
from __future__ import annotations

import threading
from pathlib import Path

from studio.core.deploy.inventory import Device, select
from studio.core.deploy.ops import bench_model


class DevicePool:
    """Times each candidate on the next free device; the sweep's workers wait while every device is busy."""

    def __init__(self, devices: list[Device], threads: int = 1):
        self._free, self._threads = list(devices), threads
        self._cond = threading.Condition()

    def __call__(self, model: Path, row) -> dict:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._free))
            device = self._free.pop(0)
        try:
            return {**bench_model(device, model, threads=self._threads), "name": device.name}
        finally:
            with self._cond:
                self._free.append(device)
                self._cond.notify()


def sweep_bench(name: str | None = None, threads: int = 1, *, tag: str | None = None) -> DevicePool:
    """The devices named (comma-separated) or, without names, those tagged `tag`; DeviceError if there is none."""
    names = [n.strip() for n in name.split(",") if n.strip()] if name else None
    return DevicePool(select(names, tag), threads)
