"""onnxruntime's profiling trace read back: each operator's kernel time, grouped by the session run it ran in."""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.base.errors import StudioError


class ProfileError(StudioError):
    """A profile that cannot be taken or read."""


@dataclass(frozen=True)
class KernelRun:
    """One operator's run: the node as onnxruntime ran it (after its graph optimizations), in microseconds."""
    node: str
    op: str
    provider: str
    us: int


def read_trace(path: Path, runs: int) -> list[list[KernelRun]]:
    """The kernel runs of the last `runs` session runs in the trace, one list per run (earlier runs warmed up)."""
    try:
        events = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError(f"onnxruntime's profile cannot be read ({exc.__class__.__name__})", path) from None
    return per_run_kernels(events, runs, path)


def per_run_kernels(events: list[dict[str, Any]], runs: int, where: str | Path) -> list[list[KernelRun]]:
    """read_trace's answer from the trace's events (a device sends them); `where` names their source in errors."""
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                     if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
    if len(windows) < runs:
        raise ProfileError(f"onnxruntime's profile holds {len(windows)} runs, {runs} were timed", where)
    starts = [start for start, _ in windows]
    per_run: list[list[KernelRun]] = [[] for _ in windows]
    for e in events:
        name, args = e.get("name", ""), e.get("args") or {}
        if e.get("cat") != "Node" or not name.endswith("_kernel_time") or "op_name" not in args:
            continue  # fences and other markers: only kernel times are operator work
        k = bisect.bisect_right(starts, e["ts"]) - 1
        if k >= 0 and e["ts"] <= windows[k][1]:
            per_run[k].append(KernelRun(name.removesuffix("_kernel_time"), args["op_name"],
                                        args.get("provider", "?"), int(e["dur"])))
    return per_run
