"""Wall time of `run_sweep` divided by a plain sequential script that converts, quantizes, evaluates and times the
same candidates with the same libraries (studio.core.optimize.optimize per candidate), measured in one run.
Goal: below 1.0 (shared conversions and two workers should beat the naive loop).

With --cluster: the same sweep on this machine and on a loopback Ray cluster (one node, as many CPUs as the local
workers), and the Ray path's scheduling overhead per candidate against a candidate's median time (goal < 10%).

Run: .venv/bin/python benchmarks/sweep.py [--quick] [--cluster]"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from studio.core.app.samples import ensure_samples
from studio.core.base.jobs import run_job
from studio.core.measure.evaluate import evaluate, measure_latency
from studio.core.optimize.optimize import optimize
from studio.core.recipe.grid import Grid
from studio.core.sweep.sweep import SweepOptions, run_sweep


def naive(model: str, grid: Grid, data: str, out: Path) -> list[tuple[str, float, float]]:
    rows = []
    for c in grid.candidates():
        try:
            doc = optimize(model, c.recipe, out / c.id, calib=data)
        except Exception as exc:  # noqa: BLE001 - count the time spent like the sweep does
            rows.append((c.id, float("nan"), float("nan")))
            print(f"  naive {c.id}: failed ({exc})", flush=True)
            continue
        path = str(out / c.id / doc["output"]["path"])
        acc = run_job(evaluate, path, data)["top1"]
        lat = run_job(measure_latency, path, None)["median_ms"]
        rows.append((c.id, acc, lat))
    return rows


def cluster_overhead(model: str, grid: Grid, data: str) -> None:
    """Wall time of the local path and of the Ray path (same parallelism), per candidate."""
    import statistics

    from studio.core.sweep.executor import ClusterOptions
    from tests.core.ray_cluster import RayCluster

    n = len(grid.candidates())
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp") as tmp:
        t = time.monotonic()
        local = run_sweep(model, grid, data, Path(tmp) / "local", options=SweepOptions(workers=1))
        local_s = time.monotonic() - t
        cluster = RayCluster(Path(tmp))
        try:
            cluster.start_head()
            t = time.monotonic()
            run_sweep(model, grid, data, Path(tmp) / "cluster",
                      options=SweepOptions(workers=1, cluster=ClusterOptions(cluster.address)))
            cluster_s = time.monotonic() - t
        finally:
            cluster.stop()
    wall = local_s / n  # a candidate's share of the local sweep: its float stage, finish, evaluation and timing
    median = statistics.median(c["seconds"] for c in local["candidates"] if c.get("seconds"))
    overhead = (cluster_s - local_s) / n
    print(f"local  : {n} candidates in {local_s:6.1f} s (1 worker; {wall:.2f} s of wall time per candidate)")
    print(f"cluster: {n} candidates in {cluster_s:6.1f} s (1 task at a time on a 1-CPU loopback node; connecting"
          f" included)")
    print(f"Ray overhead per candidate = {overhead:+.2f} s = {100 * overhead / wall:+.1f}% of a candidate's wall"
          f" time, {100 * overhead / median:+.1f}% of its median finish-and-evaluate time ({median:.2f} s);"
          f" goal < 10%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="ONNX only (6 candidates instead of 12)")
    parser.add_argument("--cluster", action="store_true", help="the Ray path's overhead against the local path")
    args = parser.parse_args()
    s = ensure_samples()
    targets = ("onnx",) if args.quick or args.cluster else ("onnx", "tflite")
    grid = Grid(targets=targets, quant=("none", "dynamic", "int8"), prune=(0.0, 0.5))
    if args.cluster:
        cluster_overhead(s["torch_model"], grid, s["dataset"])
        return 0
    n = len(grid.candidates())
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        doc = run_sweep(s["torch_model"], grid, s["dataset"], Path(tmp) / "sweep", options=SweepOptions(workers=2))
        sweep_s = time.monotonic() - t
        print(f"sweep : {n} candidates in {sweep_s:6.1f} s (2 workers, one float conversion per target and ratio)",
              flush=True)
        t = time.monotonic()
        rows = naive(s["torch_model"], grid, s["dataset"], Path(tmp) / "naive")
        naive_s = time.monotonic() - t
        print(f"naive : {n} candidates in {naive_s:6.1f} s (sequential optimize + evaluate + time per candidate)")
    ours = {c["id"]: c for c in doc["candidates"]}
    same = sum(1 for cid, acc, _ in rows if ours.get(cid, {}).get("accuracy") is not None
               and abs(ours[cid]["accuracy"] - acc) < 1e-6)
    print(f"accuracy identical for {same} of {n} candidates")
    for cid, acc, _ in rows:
        mine = ours.get(cid, {}).get("accuracy")
        if mine is None or abs(mine - acc) >= 1e-6:
            print(f"  {cid}: sweep {mine}, naive {acc}")
    print(f"ratio sweep / naive = {sweep_s / naive_s:.2f} (goal < 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
