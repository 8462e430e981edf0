"""Wall time of `run_sweep` on the PyTorch sample (its state_dict) divided by the plain single-process script a user
would write with the same libraries (benchmarks/plain.py: convert each float model once, quantize, evaluate every
candidate on the same samples, time it), measured in one run. Goal: below 1.0.

With --cluster: the same sweep on this machine and on a loopback Ray cluster (one node, as many CPUs as the local
workers), and the Ray path's scheduling overhead per candidate against a candidate's median time (goal < 10%).

Run: .venv/bin/python benchmarks/sweep.py [--quick] [--cluster]"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from plain import SWEEP, PlainCandidate, PlainJob, run_plain

from studio.core.app.samples import ensure_samples
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.recipe.grid import Grid
from studio.core.sweep.sweep import SweepOptions, run_sweep


def plain_sweep(s: dict, grid: Grid, out: Path) -> dict[str, dict]:
    """The plain script's accuracy and latency per candidate id."""
    out.mkdir(parents=True)
    candidates = tuple(PlainCandidate(c.id, c.recipe.target.value, c.recipe.quantization.mode.value,
                                      c.recipe.pruning.ratio) for c in grid.candidates())
    job = PlainJob("studio.core.inspect.archs.mnist_cnn", s["torch_state_dict"], s["dataset"], (1, 28, 28),
                   str(out), candidates)
    return run_plain(SWEEP, job)


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
    options = SweepOptions(workers=2, arch=ArchSpec.of(s["torch_arch"]))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        doc = run_sweep(s["torch_state_dict"], grid, s["dataset"], Path(tmp) / "sweep", options=options)
        sweep_s = time.monotonic() - t
        print(f"sweep : {n} candidates in {sweep_s:6.1f} s (2 workers, one float conversion per target and ratio)",
              flush=True)
        t = time.monotonic()
        rows = plain_sweep(s, grid, Path(tmp) / "plain")
        plain_s = time.monotonic() - t
        print(f"plain : {n} candidates in {plain_s:6.1f} s (one process: each float model once, then quantize,"
              f" evaluate and time each candidate)")
    ours = {c["id"]: c for c in doc["candidates"]}
    same = [cid for cid, row in rows.items() if ours.get(cid, {}).get("accuracy") is not None
            and abs(ours[cid]["accuracy"] - row["accuracy"]) < 0.15]
    print(f"accuracy within 0.1 points for {len(same)} of {n} candidates")
    for cid, row in rows.items():
        if cid not in same:
            print(f"  {cid}: sweep {ours.get(cid, {}).get('accuracy')}, plain {row['accuracy']:.2f}")
    print(f"ratio sweep / plain script = {sweep_s / plain_s:.2f} (goal < 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
