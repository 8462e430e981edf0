"""Measured effect of each optimization on the samples and mnist.onnx: size ratio, latency ratio (median of
repeated batch-1 runs, same thread count) and top-1 delta against the FP32 model of the same target.

Run: .venv/bin/python benchmarks/optimize.py [--threads N] [--quick]"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from studio.core.app.samples import ensure_samples
from studio.core.base.jobs import run_job
from studio.core.measure.evaluate import evaluate, measure_latency
from studio.core.measure.latency import LatencyOptions
from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Pruning, Quantization, Recipe

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "models" / "onnx" / "mnist.onnx"


def variants(kind: str, quick: bool):
    quants = ["dynamic", "int8"] if quick else ["dynamic", "int8", "fp16"]
    targets = ["onnx"] if kind == "onnx" else ["onnx", "tflite"]
    for target in targets:
        yield f"{target} fp32", Recipe(target=target)
        for q in quants:
            yield f"{target} {q}", Recipe(target=target, quantization=Quantization(q))
        if kind == "torch":
            yield f"{target} prune0.5", Recipe(target=target, pruning=Pruning("structured", 0.5))
            yield f"{target} prune0.5+ft", Recipe(target=target, pruning=Pruning("structured", 0.5, finetune_epochs=2))
        else:
            yield f"{target} sparse0.5", Recipe(target=target, pruning=Pruning("unstructured", 0.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer variants")
    args = parser.parse_args()
    s = ensure_samples()
    sources = [("torch", s["torch_model"]), ("keras", s["keras_model"])]
    if SHARED_MNIST.is_file():
        sources.append(("onnx", str(SHARED_MNIST)))
    else:
        print(f"(skipping mnist.onnx: {SHARED_MNIST} is absent)")
    print(f"threads={args.threads}, batch 1, accuracy on {s['dataset']}")
    header = (f"{'source':<8} {'variant':<16} {'size':>9} {'size x':>7} {'ms':>8} {'latency x':>9} {'top1':>6}"
              f" {'delta':>6}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for kind, src in sources:
            base: dict[str, tuple] = {}
            for name, recipe in variants(kind, args.quick):
                out = Path(tmp) / kind / name.replace(" ", "_")
                try:
                    doc = optimize(src, recipe, out, calib=s["dataset"], finetune=s["train_dataset"])
                except Exception as exc:  # noqa: BLE001 - a failing variant is a result too
                    print(f"{kind:<8} {name:<16} failed: {exc}")
                    continue
                path = str(out / doc["output"]["path"])
                lat = run_job(measure_latency, path, None, LatencyOptions(threads=args.threads))["median_ms"]
                acc = run_job(evaluate, path, s["dataset"])["top1"]
                size = doc["output"]["size_bytes"]
                target = recipe.target.value
                if name.endswith("fp32"):
                    base[target] = (size, lat, acc)
                b = base.get(target, (size, lat, acc))
                print(f"{kind:<8} {name:<16} {size / 1024:>7.1f}kB {size / b[0]:>7.2f} {lat:>8.4f} {lat / b[1]:>9.2f}"
                      f" {acc:>6.1f} {acc - b[2]:>+6.1f}", flush=True)
    print("size x and latency x are ratios to the FP32 model of the same target (below 1 = smaller / faster);"
          " delta is top-1 points.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
