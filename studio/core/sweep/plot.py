"""RUN/tradeoff.png: accuracy vs latency, marker size = model size, colour = target and quantization, Pareto front
drawn as a line (matplotlib, no display needed)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from studio.core.base.atomic import atomic_path
from studio.core.sweep.pareto import front_2d
from studio.core.sweep.records import CandidateResult, CandidateStatus

COLOURS = {"none": "#4c72b0", "fp16": "#55a868", "dynamic": "#dd8452", "int8": "#c44e52"}
MARKERS = {"onnx": "o", "tflite": "s"}


def plot_tradeoff(candidates: Sequence[CandidateResult], out: Path, *, model_path: str, metric: str,
                  threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [(c, c.latency_ms_median, c.score) for c in candidates if c.ok]
    points = [(c, x, y) for c, x, y in ok if x is not None and y is not None]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if points:
        biggest = max(c.size_bytes or 0 for c, _, _ in points) or 1
        for c, x, y in points:
            size = 40 + 400 * (c.size_bytes or 0) / biggest
            ax.scatter(x, y, s=size, c=COLOURS.get(c.quant, "#8172b3"), marker=MARKERS.get(c.target, "o"),
                       alpha=0.8, edgecolors="black" if c.pareto else "none", linewidths=1.5)
            ax.annotate(c.id, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7, color="#333333")
        at = {c.id: (x, y) for c, x, y in points}
        front = [at[c.id] for c in front_2d([c for c, _, _ in points])]
        if front:
            ax.step([x for x, _ in front], [y for _, y in front], "-", where="post",
                    color="black", lw=1, label="accuracy/latency front")
        ax.scatter([], [], facecolors="none", edgecolors="black", linewidths=1.5, label="Pareto (with size)")
    for quant, colour in COLOURS.items():
        ax.scatter([], [], c=colour, label="fp32" if quant == "none" else quant)
    for target, marker in MARKERS.items():
        ax.scatter([], [], c="grey", marker=marker, label=target)
    greyed = [(c.latency_ms_median, c.score) for c in candidates if c.status == CandidateStatus.DEGRADED
              and c.latency_ms_median is not None and c.score is not None]
    if greyed:
        ax.scatter([x for x, _ in greyed], [y for _, y in greyed], c="#9a9a9a", marker="x",
                   label="degraded (below the quality gate)")
    failed = sum(1 for c in candidates if c.status == CandidateStatus.FAILED)
    ax.set_xlabel(f"latency, median ms (batch 1, {threads} thread(s), measured)")
    ax.set_ylabel(metric)
    title = f"{Path(model_path).name}: {len(points)} candidates"
    if failed:
        title += f", {failed} failed"
    if greyed:
        title += f", {len(greyed)} degraded"
    ax.set_title(title + " (marker size = model size)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
