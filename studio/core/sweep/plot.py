"""RUN/tradeoff.png: accuracy vs latency, marker size = model size, colour = target and quantization, Pareto front
drawn as a line (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

from studio.core.base.atomic import atomic_path
from studio.core.sweep.pareto import front_2d, score

COLOURS = {"none": "#4c72b0", "fp16": "#55a868", "dynamic": "#dd8452", "int8": "#c44e52"}
MARKERS = {"onnx": "o", "tflite": "s"}


def plot_tradeoff(doc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [c for c in doc["candidates"] if c["status"] == "ok" and score(c) is not None]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if ok:
        biggest = max(c["size_bytes"] for c in ok)
        for c in ok:
            size = 40 + 400 * c["size_bytes"] / biggest
            ax.scatter(c["latency_ms_median"], score(c), s=size, c=COLOURS.get(c["quant"], "#8172b3"),
                       marker=MARKERS.get(c["target"], "o"), alpha=0.8,
                       edgecolors="black" if c["pareto"] else "none", linewidths=1.5)
            ax.annotate(c["id"], (c["latency_ms_median"], score(c)), textcoords="offset points", xytext=(6, 4),
                        fontsize=7, color="#333333")
        front = front_2d(ok)
        if front:
            ax.step([c["latency_ms_median"] for c in front], [score(c) for c in front], "-", where="post",
                    color="black", lw=1, label="accuracy/latency front")
        ax.scatter([], [], facecolors="none", edgecolors="black", linewidths=1.5, label="Pareto (with size)")
    for quant, colour in COLOURS.items():
        ax.scatter([], [], c=colour, label="fp32" if quant == "none" else quant)
    for target, marker in MARKERS.items():
        ax.scatter([], [], c="grey", marker=marker, label=target)
    failed = sum(1 for c in doc["candidates"] if c["status"] == "failed")
    ax.set_xlabel(f"latency, median ms (batch 1, {doc.get('threads', 1)} thread(s), measured)")
    ax.set_ylabel(doc.get("metric", "accuracy (%)"))
    title = f"{Path(doc['model']['path']).name}: {len(ok)} candidates"
    if failed:
        title += f", {failed} failed"
    ax.set_title(title + " (marker size = model size)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
