"""LiteRT's profile summary read back: the "Run Order" table (one row per operator that ran, as TensorFlow Lite's
benchmark_model prints it with --enable_op_profiling) as kernel runs. XNNPACK's operators are rows
"Delegate/<XNNPACK operator>" named "[Delegate]:K"; an operator the delegate left to LiteRT's own kernels is a row
"<TFLite op>" named "[Builtin]:I", I being its index in the model's graph."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from studio.core.look.ort_trace import KernelRun, ProfileError

DELEGATE = "XNNPACK"
BUILTIN = "TFLite kernels"
ROW = re.compile(r"^\s*(?P<op>\S.*?)\s+(?P<start>[\d.]+)\s+(?P<first>[\d.]+)\s+(?P<avg>[\d.]+)\s+[\d.]+%\s+[\d.]+%"
                 r"\s+[\d.]+\s+(?P<calls>\d+)\s+(?P<name>\S.*?)\s*$")


def kernel_runs(summary: str, runs: int, names: Mapping[str, str], where: str | Path) -> list[list[KernelRun]]:
    """The operators of the timed runs as one averaged run (LiteRT's summary gives each operator's mean per run):
    a builtin operator named by its first output tensor (`names`: graph index, as a string -> name), an XNNPACK
    operator by its place in the delegate's plan."""
    rows = _run_order(summary, where)
    recorded = max(int(m["calls"]) for m in rows)
    if recorded < runs:  # LiteRT drops events once its buffer is full: the times would be short, not wrong-looking
        raise ProfileError(f"LiteRT's profiler recorded {recorded} of the {runs} timed runs: profile fewer runs",
                           where)
    kernels = []
    for m in rows:
        op, name = m["op"], m["name"]
        calls = int(m["calls"])
        us = round(float(m["avg"]) * 1000 * calls / runs)  # a node run more than once a run (a loop) counts each
        if op.startswith("Delegate/"):
            kernels.append(KernelRun(f"xnnpack#{_index(name)}", op.removeprefix("Delegate/"), DELEGATE, us))
        else:
            k = _index(name)
            kernels.append(KernelRun(names.get(str(k), f"node {k}") if k is not None else name, op, BUILTIN, us))
    return [kernels]


def _run_order(summary: str, where: str | Path) -> list[re.Match]:
    lines = summary.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "Run Order" in line and line.startswith("="))
    except StopIteration:
        raise ProfileError("LiteRT's profile summary has no Run Order table", where) from None
    rows = []
    for line in lines[start + 2:]:
        if line.startswith("=") or not line.strip():
            break
        m = ROW.match(line)
        if m is None:
            raise ProfileError(f"LiteRT's profile summary has a row Studio cannot read: {line.strip()!r}", where)
        rows.append(m)
    if not rows:
        raise ProfileError("LiteRT's profile recorded no operator", where)
    return rows


def _index(name: str) -> int | None:
    m = re.search(r":(\d+)$", name)
    return int(m.group(1)) if m else None
