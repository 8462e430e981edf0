"""On-device latency for the sweep: `studio sweep --device NAME`."""
from __future__ import annotations

from pathlib import Path

from studio.core.deploy.inventory import get
from studio.core.deploy.ops import bench_model


def sweep_bench(name: str, threads: int = 1):
    device = get(name)

    def measure(model: Path, row: dict) -> dict:
        return bench_model(device, model, threads=threads)
    return measure
