#!/usr/bin/env python3
"""Studio bundle runner: load this bundle's model with the device's runtime, run it on a sample input, and print
latency and an output summary as one JSON line. Needs only numpy and onnxruntime, or numpy and ai-edge-litert /
tflite-runtime / tensorflow. Exit code 0 when the model ran, 1 (with {"ok": false, "error": ...}) when not.

    python3 runner.py [--runs N] [--warmup N] [--threads N]
    python3 runner.py --check [--bundle DIR] [--runs N]   the monitor's check: fidelity of every output on the
                                                          bundle's check set, latency, peak memory

STUDIO_DEMO_DELAY_MS (environment) adds that many milliseconds to every inference: a simulated slow device.
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def load_tflite_interpreter():
    for module, label in (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter",
                                                                            "tflite-runtime"),
                          ("tensorflow.lite", "tensorflow")):
        try:
            mod = __import__(module, fromlist=["Interpreter"])
            version = getattr(sys.modules[module.split(".")[0]], "__version__", "unknown")
            return mod.Interpreter, label, version
        except ImportError:
            continue
    fail("no TFLite runtime found: install ai-edge-litert or tflite-runtime")


class OnnxModel:
    def __init__(self, path, threads):
        try:
            import onnxruntime as ort
        except ImportError:
            fail("onnxruntime is not installed on this device")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.runtime, self.version = "onnxruntime", ort.__version__
        self.names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds):
        return self.session.run(None, dict(zip(self.names, feeds)))


class TfliteModel:
    def __init__(self, path, threads):
        interpreter, self.runtime, self.version = load_tflite_interpreter()
        self.it = interpreter(model_path=path, num_threads=threads)
        self.it.allocate_tensors()
        self.ins = self.it.get_input_details()
        self.outs = self.it.get_output_details()

    def run(self, feeds):
        resized = False
        for d, x in zip(self.ins, feeds):
            if list(x.shape) != [int(v) for v in d["shape"]]:  # a dynamic dim, resolved by the sample
                self.it.resize_tensor_input(d["index"], list(x.shape))
                resized = True
        if resized:
            self.it.allocate_tensors()
            self.ins = self.it.get_input_details()
        for d, x in zip(self.ins, feeds):
            self.it.set_tensor(d["index"], x)
        self.it.invoke()
        return [self.it.get_tensor(d["index"]) for d in self.outs]


class Delayed:
    """A model that sleeps STUDIO_DEMO_DELAY_MS before each inference (the demo's slow device)."""

    def __init__(self, model, delay_ms):
        self.model, self.delay = model, delay_ms / 1000.0
        self.runtime, self.version = model.runtime, model.version

    def run(self, feeds):
        time.sleep(self.delay)
        return self.model.run(feeds)


def open_model(folder, manifest, threads):
    model = (OnnxModel if manifest["format"] == "onnx" else TfliteModel)(os.path.join(folder, manifest["model"]),
                                                                         threads)
    try:
        delay = float(os.environ.get("STUDIO_DEMO_DELAY_MS") or 0)
    except ValueError:
        delay = 0.0
    return Delayed(model, delay) if delay > 0 else model


def sample_inputs(np, manifest, folder=HERE):
    """(feeds, expected outputs or None): the bundle's sample, else (an older bundle) random inputs."""
    sample = os.path.join(folder, "sample.npz")
    entry = manifest.get("sample")
    if os.path.exists(sample):
        data = np.load(sample, allow_pickle=False)
        if not isinstance(entry, dict):
            return [data[k] for k in sorted(data.files)], None
        feeds = [data["input%03d" % k] for k in range(len(entry["inputs"]))]
        return feeds, [data["expected%03d" % k] for k in range(int(entry.get("expected", 0)))]
    rng = np.random.RandomState(0)
    feeds = []
    for spec in manifest["inputs"]:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
        dtype = np.dtype(spec["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            feeds.append(rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(dtype))
        else:
            feeds.append(rng.standard_normal(shape).astype(dtype))
    return feeds, None


def compare(np, outputs, expected, rtol):
    """None when every output matches its expected value within tolerance, else what differs."""
    for k, want in enumerate(expected):
        got = np.asarray(outputs[k])
        if got.shape != want.shape:
            return "output %d has shape %s, expected %s" % (k, list(got.shape), list(want.shape))
        err = float(np.abs(got.astype("float64") - want.astype("float64")).max()) if want.size else 0.0
        tol = (1.0 if want.dtype.kind in "iu" else 1e-5) + rtol * float(np.abs(want.astype("float64")).max()
                                                                       if want.size else 0.0)
        if err > tol:
            return "output %d differs from the expected output by %.4g (tolerance %.4g)" % (k, err, tol)
    return None


def summarize(np, spec, out):
    arr = np.asarray(out)
    if arr.dtype == object or arr.size == 0:
        return {"name": spec["name"], "kind": "non-tensor" if arr.dtype == object else "empty", "length": len(out)}
    item = {"name": spec["name"], "shape": list(arr.shape), "dtype": str(arr.dtype),
            "min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.astype("float64").mean())}
    if arr.ndim == 2 and arr.shape[0] == 1 and arr.shape[1] > 1:
        item["argmax"] = int(arr[0].argmax())
    return item

# --- the monitor's check ----------------------------------------------------------------------------------------
# The same metrics as Studio's sweep (studio/core/measure/fidelity.py), written again here because this file runs
# on the device with numpy alone; a test holds the two to the same numbers.

CLASS_WORDS = ("prob", "score", "logit", "class", "cls", "label", "softmax", "pred")


def check_set(np, manifest, folder):
    """(runs' feeds, expected float outputs [N, ...] or None, what made the expected outputs): the bundle's check
    set, else (a schema 2 bundle) its one sample, else (older) random inputs with nothing to compare."""
    entry = manifest.get("check_set")
    if isinstance(entry, dict):
        data = np.load(os.path.join(folder, entry["file"]), allow_pickle=False)
        runs = [[data["s%03d_input%03d" % (i, k)] for k in range(len(manifest["inputs"]))]
                for i in range(int(entry["count"]))]
        expected = [data["expected%03d" % k] for k in range(int(entry["expected"]))]
        return runs, expected, entry.get("expected_by", "source model")
    feeds, expected = sample_inputs(np, manifest, folder)
    if expected is None:
        return [feeds], None, None
    specs = manifest["outputs"]
    return [feeds], [decode(np, specs[k] if k < len(specs) else {}, e) for k, e in enumerate(expected)], \
        "bundle model"


def decode(np, spec, y):
    """An output as float64, dequantized with the manifest's scale and zero point when it is an integer tensor."""
    y = np.asarray(y)
    q = spec.get("quantization") or {}
    scale = q.get("scale")
    scale = scale[0] if isinstance(scale, list) and len(scale) == 1 else scale
    if y.dtype.kind in "iu" and isinstance(scale, (int, float)) and scale:
        zp = q.get("zero_point")
        zp = zp[0] if isinstance(zp, list) and zp else (zp or 0)
        return (y.astype("float32") - float(zp)) * float(scale)
    return y.astype("float32")


def rows(np, outputs):
    """One output over every run, one row per sample (a run of one sample gives one row)."""
    if all(np.asarray(o).ndim >= 1 for o in outputs):
        return np.concatenate([np.asarray(o) for o in outputs])
    return np.stack([np.asarray(o) for o in outputs])


def is_class_scores(np, ref, name, only_output):
    if ref.ndim != 2 or ref.shape[1] < 2:
        return False
    r = ref.astype("float64")
    probabilities = bool(np.all(r >= -1e-6) and np.all(r <= 1 + 1e-6) and np.allclose(r.sum(1), 1.0, atol=1e-3))
    lowered = name.lower()
    return probabilities or any(w in lowered for w in CLASS_WORDS) or only_output


def fidelity(np, ref, got, name, only_output):
    """cosine (mean over samples), SQNR in dB (None when identical), max-abs error, top-1 agreement in percent
    (class-score outputs only): fidelity.per_output's definitions."""
    r64 = np.asarray(ref, "float64")
    g64 = np.asarray(got, "float64").reshape(r64.shape)
    n = len(r64) if r64.ndim else 1
    rf, gf = r64.reshape(n, -1), g64.reshape(n, -1)
    rn, gn = np.linalg.norm(rf, axis=1), np.linalg.norm(gf, axis=1)
    denom = rn * gn
    both_zero = ((rn == 0) & (gn == 0)).astype(float)
    cosine = float(np.mean(np.where(denom > 0, (rf * gf).sum(1) / np.maximum(denom, 1e-30), both_zero)))
    noise = float(np.sum((r64 - g64) ** 2))
    sqnr = None if noise == 0 else float(10 * np.log10(float(np.sum(r64 ** 2)) / noise + 1e-30))
    agree = None
    if is_class_scores(np, rf if r64.ndim == 2 else r64, name, only_output):
        agree = float(np.mean(rf.argmax(1) == gf.argmax(1)) * 100)
    max_abs = float(np.abs(r64 - g64).max()) if r64.size else 0.0
    return {"name": name, "cosine": cosine, "sqnr_db": sqnr, "max_abs": max_abs, "agreement": agree}


def peak_memory_mb():
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB on Linux


def run_check(np, folder, runs, warmup, threads):
    """The check as one JSON-able dict: per-output fidelity on the check set, latency, peak memory, versions."""
    with open(os.path.join(folder, "manifest.json")) as fh:
        manifest = json.load(fh)
    model = open_model(folder, manifest, threads)
    feeds, expected, expected_by = check_set(np, manifest, folder)
    specs = manifest["outputs"]
    outputs = [model.run(f) for f in feeds]
    for k in range(warmup):
        model.run(feeds[k % len(feeds)])
    times = []
    for k in range(max(1, runs)):
        start = time.perf_counter()
        model.run(feeds[k % len(feeds)])
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    found = []
    if expected is not None:
        tensors = [j for j, o in enumerate(outputs[0]) if np.asarray(o).dtype != object]
        for k, want in enumerate(expected):
            if k >= len(tensors):
                break
            j = tensors[k]
            spec = specs[j] if j < len(specs) else {"name": "output%d" % j}
            got = rows(np, [decode(np, spec, out[j]) for out in outputs])
            if got.size != np.asarray(want).size:
                return {"ok": False, "error": "output '%s' has %d values on the device, the check set expects %d"
                        % (spec["name"], got.size, np.asarray(want).size)}
            found.append(fidelity(np, want, got, spec["name"], len(expected) == 1))
    return {"ok": True, "check": True, "bundle": manifest.get("id"), "runtime": model.runtime,
            "runtime_version": model.version, "python_version": platform.python_version(), "threads": threads,
            "latency_ms": {"median": times[len(times) // 2], "p90": times[min(len(times) - 1, int(len(times) * 0.9))],
                           "runs": len(times)},
            "peak_memory_mb": peak_memory_mb(), "samples": len(feeds), "expected_by": expected_by,
            "fidelity": found}


def main():
    parser = argparse.ArgumentParser(description="Run this bundle's model once as a check and time it.")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="the monitor's check (fidelity, latency, memory)")
    parser.add_argument("--bundle", default=HERE, help="the bundle folder to check (default: this one)")
    args = parser.parse_args()
    try:
        import numpy as np
    except ImportError:
        fail("numpy is not installed on this device")
    if args.check:
        try:
            doc = run_check(np, os.path.abspath(args.bundle), args.runs, args.warmup, args.threads)
        except SystemExit:
            raise
        except Exception as exc:  # the model no longer loads or runs: say so, as JSON
            reason = " ".join(str(exc).split())[:300]
            fail("the check could not run the model: %s" % (reason or type(exc).__name__))
        print(json.dumps(doc))
        sys.exit(0 if doc.get("ok") else 1)
    try:
        with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        fail("cannot read manifest.json: %s" % exc)
    try:
        model = open_model(HERE, manifest, args.threads)
        feeds, expected = sample_inputs(np, manifest)
        for _ in range(args.warmup):
            outputs = model.run(feeds)
        times = []
        for _ in range(max(1, args.runs)):
            start = time.perf_counter()
            outputs = model.run(feeds)
            times.append((time.perf_counter() - start) * 1000.0)
    except SystemExit:
        raise
    except Exception as exc:  # a model the device's runtime refuses: say so, as JSON
        reason = " ".join(str(exc).split())[:300]
        fail("the device's runtime cannot run the model: %s" % (reason or "it failed without saying why"))
    times.sort()
    summary = [summarize(np, spec, out) for spec, out in zip(manifest["outputs"], outputs)]
    check = None
    if expected is not None:
        problem = compare(np, [o for o in outputs if np.asarray(o).dtype != object], expected,
                          float((manifest.get("sample") or {}).get("rtol", 1e-3)))
        if problem:
            fail("the model runs but gives other answers than on the machine that built the bundle: " + problem)
        check = {"passed": True, "outputs": len(expected)}
    print(json.dumps({
        "sample_check": check,
        "ok": True, "bundle": manifest.get("id"), "runtime": model.runtime, "runtime_version": model.version,
        "threads": args.threads, "latency_ms": {"median": times[len(times) // 2],
                                                "p90": times[min(len(times) - 1, int(len(times) * 0.9))],
                                                "runs": len(times)},
        "outputs": summary}))


if __name__ == "__main__":
    main()
