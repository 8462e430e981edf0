#!/usr/bin/env python3
"""Studio bundle runner: load this bundle's model with the device's runtime, run it on a sample input, and print
latency and an output summary as one JSON line. Needs only numpy and onnxruntime, or numpy and ai-edge-litert /
tflite-runtime / tensorflow. Exit code 0 when the model ran, 1 (with {"ok": false, "error": ...}) when not.

    python3 runner.py [--runs N] [--warmup N] [--threads N]
"""
import argparse
import json
import os
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


def sample_inputs(np, manifest):
    """(feeds, expected outputs or None): the bundle's sample, else (an older bundle) random inputs."""
    sample = os.path.join(HERE, "sample.npz")
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


def main():
    parser = argparse.ArgumentParser(description="Run this bundle's model once as a check and time it.")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:
        import numpy as np
    except ImportError:
        fail("numpy is not installed on this device")
    try:
        with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        fail("cannot read manifest.json: %s" % exc)
    path = os.path.join(HERE, manifest["model"])
    try:
        model = (OnnxModel if manifest["format"] == "onnx" else TfliteModel)(path, args.threads)
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
