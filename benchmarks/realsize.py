"""Real-size figures: torchvision's mobilenet_v2 (random weights, seed 0, saved as a state_dict) at 224x224 on
synthetic data (labels: the model's own top-1, so accuracy is agreement with the source), Studio against the
scripts a user would write by hand with the same libraries (benchmarks/plain.py), alternated in one run:

- each single `studio optimize` (onnx/tflite x fp32/int8) over its hand-written script (goal <= 1.2);
- the 4-candidate `studio sweep` over one plain script doing the same candidates (goal <= 0.8);
- Studio's evaluation throughput over the runtime's own batched throughput on the same model and cores (goal
  >= 0.8), for the ONNX fp32 model (dynamic batch) and the TFLite fp32 one (batch 1);
- per target, the best candidate's latency within the quality gate over that target's FP32 one (from the sweep).

Both sides start a fresh Python per command and pay their imports. Wall times are medians over --rounds, the
order of the two sides alternating between rounds.

Run: .venv/bin/python benchmarks/realsize.py [--samples 100] [--rounds 2] [--json]"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from plain import OPTIMIZE, SWEEP, PlainCandidate, PlainJob, run_plain

ARCH = "mobilenet_v2"
VARIANTS = (("onnx", "none"), ("onnx", "int8"), ("tflite", "none"), ("tflite", "int8"))


def prepare(work: Path, samples: int) -> None:
    """WORK/model.pt (a state_dict) and WORK/data.npz (x float32 [N, 3, 224, 224], y the model's top-1)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2().eval()
    torch.save(model.state_dict(), work / "model.pt")
    x = np.random.default_rng(0).standard_normal((samples, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        y = np.concatenate([model(torch.from_numpy(x[k:k + 32])).argmax(1).numpy() for k in range(0, samples, 32)])
    np.savez(work / "data.npz", x=x, y=y)


def studio(*args: str) -> float:
    """Wall seconds of one `studio` command (a fresh Python, as a user runs it)."""
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"studio {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - t


def plain(body: str, job: PlainJob) -> tuple[float, dict]:
    t = time.monotonic()
    got = run_plain(body, job)
    return time.monotonic() - t, got


def job(work: Path, out: str, candidates: tuple[PlainCandidate, ...]) -> PlainJob:
    return PlainJob(f"torchvision.models.{ARCH}", str(work / "model.pt"), str(work / "data.npz"), (3, 224, 224),
                    out, candidates)


def optimize_args(work: Path, target: str, quant: str, out: Path) -> list[str]:
    return ["optimize", str(work / "model.pt"), "--arch", ARCH, "--target", target, "--quant", quant,
            "--calib", str(work / "data.npz"), "-o", str(out)]


def alternate(rounds: int, ours, theirs) -> tuple[float, float]:
    """Median wall seconds of both sides, each round starting with the other side."""
    mine: list[float] = []
    other: list[float] = []
    for r in range(rounds):
        for side in ((ours, mine), (theirs, other))[:: 1 if r % 2 == 0 else -1]:
            side[1].append(side[0](r))
    return statistics.median(mine), statistics.median(other)


def single_optimizes(work: Path, rounds: int) -> dict[str, dict]:
    return {f"{t}-{'fp32' if q == 'none' else q}": one_optimize(work, t, q, rounds) for t, q in VARIANTS}


def one_optimize(work: Path, target: str, quant: str, rounds: int) -> dict:
    name = f"{target}-{'fp32' if quant == 'none' else quant}"
    folder = work / "optimize" / name
    folder.mkdir(parents=True)
    seen: dict = {}

    def ours(r):
        return studio(*optimize_args(work, target, quant, folder / f"studio-{r}"))

    def theirs(r):
        seconds, seen["plain"] = plain(OPTIMIZE, job(work, str(folder / f"plain-{r}.{target}"),
                                                     (PlainCandidate(name, target, quant),)))
        return seconds

    s, p = alternate(rounds, ours, theirs)
    print(f"optimize {name:<12} studio {s:6.1f} s  script {p:6.1f} s  ratio {s / p:.2f} (goal <= 1.2)", flush=True)
    return {"studio_s": s, "script_s": p, "ratio": s / p, "script_agreement": seen["plain"]["agreement"]}


def sweep(work: Path, rounds: int, samples: int) -> tuple[dict, dict]:
    candidates = tuple(PlainCandidate(f"{t}-{q}", t, q) for t, q in VARIANTS)
    runs = work / "sweep"

    def ours(r):
        return studio("sweep", str(work / "model.pt"), "--arch", ARCH, "--data", str(work / "data.npz"),
                      "--quant", "none,int8", "--target", "onnx,tflite", "--limit", str(samples),
                      "-o", str(runs / f"studio-{r}"))

    def theirs(r):
        folder = runs / f"plain-{r}"
        folder.mkdir(parents=True)
        return plain(SWEEP, job(work, str(folder), candidates))[0]

    s, p = alternate(rounds, ours, theirs)
    print(f"sweep    4 candidates  studio {s:6.1f} s  script {p:6.1f} s  ratio {s / p:.2f} (goal <= 0.8)", flush=True)
    results = json.loads((runs / "studio-0" / "results.json").read_text())
    return {"studio_s": s, "script_s": p, "ratio": s / p}, best_speedup(results)


def best_speedup(results: dict) -> dict[str, dict]:
    """Per target: the FP32 candidate's latency over the fastest candidate's that passed the quality gate."""
    out = {}
    for target in ("onnx", "tflite"):
        rows = [c for c in results["candidates"] if c["recipe"]["target"] == target and c.get("latency_ms_median")]
        fp32 = next((c for c in rows if c["recipe"]["quantization"]["mode"] == "none"), None)
        passed = [c for c in rows if c["status"] == "ok"]
        if fp32 is None or not passed:
            continue
        best = min(passed, key=lambda c: c["latency_ms_median"])
        out[target] = {"best": best["id"], "speedup": fp32["latency_ms_median"] / best["latency_ms_median"]}
        print(f"best within the gate, {target}: {best['id']} at {best['latency_ms_median']:.3f} ms,"
              f" {out[target]['speedup']:.2f}x faster than FP32 ({fp32['latency_ms_median']:.3f} ms)", flush=True)
    return out


def evaluation(work: Path, samples: int) -> dict[str, float]:
    """Samples per second of Studio's evaluation (the sweep's predict, threads as the sweep gives one job) over
    the runtime's own loop on all cores (ONNX: batches of 64), alternated three times, same model files."""
    from studio.core.measure.runtimes import eval_threads, open_runner, predict
    from studio.core.tensors.samples import single
    from studio.core.tensors.shapes import BatchMode, InputShape

    x = np.load(work / "data.npz")["x"][:samples]
    cores = eval_threads()
    out = {}
    for target in ("onnx", "tflite"):
        path = str(next((work / "optimize" / f"{target}-fp32" / "studio-0").glob(f"model.{target}")))
        runner = open_runner(path, eval_threads())
        spec = InputShape(runner.inputs[0].name, "float32", (1, 3, 224, 224), BatchMode.DYNAMIC)
        data = single(x, spec)
        own = _runtime_loop(path, x, cores)
        ours_s, theirs_s = [], []
        for _ in range(3):
            t = time.monotonic()
            predict(runner, data)
            ours_s.append(time.monotonic() - t)
            t = time.monotonic()
            own()
            theirs_s.append(time.monotonic() - t)
        ratio = statistics.median(theirs_s) / statistics.median(ours_s)
        out[target] = ratio
        print(f"evaluate {target:<6} studio {samples / statistics.median(ours_s):6.1f} samples/s, runtime's own"
              f" {samples / statistics.median(theirs_s):6.1f} samples/s on {cores} threads: ratio {ratio:.2f}"
              f" (goal >= 0.8)", flush=True)
    return out


def _runtime_loop(path: str, x: np.ndarray, threads: int):
    if path.endswith(".onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda: [s.run(None, {name: x[k:k + 64]}) for k in range(0, len(x), 64)]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    index, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def loop():
        for k in range(len(x)):
            it.set_tensor(index, x[k:k + 1])
            it.invoke()
            it.get_tensor(out)
    return loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each comparison (median)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.add_argument("--sweep-only", action="store_true", help="only the sweep and its best speed-ups")
    args = parser.parse_args()
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    print(f"{os.cpu_count()} CPUs, avx512_vnni: {'avx512_vnni' in cpu}; {ARCH} 224x224, {args.samples} samples,"
          f" {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory(prefix="realsize-") as tmp:
        work = Path(tmp)
        prepare(work, args.samples)
        if args.sweep_only:
            sweep(work, args.rounds, args.samples)
            return 0
        optimizes = single_optimizes(work, args.rounds)
        sweep_figures, best = sweep(work, args.rounds, args.samples)
        evals = evaluation(work, args.samples)
    worst = max(optimizes.values(), key=lambda v: v["ratio"])["ratio"]
    print(f"worst single optimize over its script: {worst:.2f} (goal <= 1.2)")
    if args.json:
        print(json.dumps({"optimize_over_script": round(worst, 3),
                          "sweep_over_script": round(sweep_figures["ratio"], 3),
                          "eval_over_runtime": round(min(evals.values()), 3),
                          "best_speedup": {t: round(v["speedup"], 3) for t, v in best.items()},
                          "optimize": optimizes, "sweep": sweep_figures, "evaluation": evals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
