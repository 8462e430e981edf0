"""The sweep's device pool: every candidate is timed on some device, never two at once on the same device."""
from __future__ import annotations

import threading
from pathlib import Path

import studio.core.deploy.bench as bench
from studio.core.deploy.inventory import Device


def test_each_device_times_one_candidate_at_a_time(monkeypatch):
    devices = [Device(name=n, kind="local", dir=f"/tmp/{n}", python="python3") for n in ("a", "b")]
    busy: set[str] = set()
    overlap, lock = [], threading.Lock()
    both = threading.Barrier(2, timeout=10)  # the first two timings run together: one on each device

    def fake_bench(device, model, threads=1):  # the network part; the pool is what is tested
        with lock:
            overlap.append(device.name in busy)
            busy.add(device.name)
        if len(overlap) <= 2:
            both.wait()
        with lock:
            busy.discard(device.name)
        return {"median_ms": 1.0}

    monkeypatch.setattr(bench, "bench_model", fake_bench)
    pool = bench.DevicePool(devices)
    got: list[dict] = []
    threads = [threading.Thread(target=lambda: got.append(pool(Path("m.onnx"), None))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and not any(overlap)
    assert {g["name"] for g in got} == {"a", "b"}
