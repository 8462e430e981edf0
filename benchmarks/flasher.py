"""Size and start-up time of the standalone flasher (`make installer` builds it at dist/studio-flash/).

Run: .venv/bin/python benchmarks/flasher.py [PATH/TO/studio-flash] [--bundle B.bundle.zip] [--runs 5]
Prints the folder size against the 250 MB goal and the median wall time of `--version`, `verify` and opening the
flash screen (offscreen, quit as soon as it is shown)."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path


def timed(cmd: list[str], env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="dist/studio-flash/studio-flash")
    parser.add_argument("--bundle", help="a bundle to verify (default: the demo bundle, if exported)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binary = Path(args.binary).resolve()
    folder = binary.parent
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"size of {folder}: {size / 1e6:.0f} MB (goal < 250 MB: ratio {size / 250e6:.2f})")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STUDIO_EXIT_WHEN_SHOWN="1")
    env.pop("PYTHONPATH", None)
    timed([str(binary), "--version"], env, 1)  # a first run warms the page cache
    print(f"studio-flash --version: {timed([str(binary), '--version'], env, args.runs) * 1000:.0f} ms (median)")
    if args.bundle:
        t = timed([str(binary), "verify", args.bundle], env, args.runs)
        print(f"studio-flash verify {Path(args.bundle).name}: {t * 1000:.0f} ms (median)")
    print(f"flash screen shown: {timed([str(binary)], env, args.runs) * 1000:.0f} ms (median, offscreen)")


if __name__ == "__main__":
    main()
