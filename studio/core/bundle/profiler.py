#!/usr/bin/env python3
"""Studio's device-side profiler: run a bundle's model on the bundle's check set with the device's runtime and its
profiler on (onnxruntime's for ONNX; LiteRT's, through litert_profiler.py, for TFLite), and print the timed runs' wall
times and the profiler's record as one JSON line; Studio aggregates them as it does a profile on the host. Uploaded
beside the agent, the check runner (whose check set it reads) and litert_profiler.py.

    python3 profiler.py --bundle DIR [--runs N] [--warmup N] [--threads N] [--as-written]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":  # on the device
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
try:
    import litert_profiler  # type: ignore[import-not-found]
    import runner  # type: ignore[import-not-found]
except ImportError:  # imported from Studio's own source tree, not from a device folder
    from studio.core.bundle import litert_profiler, runner


def fail(message, **extra):
    print(json.dumps(dict(ok=False, error=message, **extra)))
    sys.exit(1)


def compact(events, runs):
    """The timed runs' events, small: ["run", ts, dur] per session run and [ts, dur, node, op, provider] per kernel
    (the warm-up's events and every other field are left on the device)."""
    windows = sorted((e["ts"], e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first = windows[-runs][0] if len(windows) >= runs else 0
    out = [["run", ts, dur] for ts, dur in windows[-runs:]]
    for e in events:
        name, args = e.get("name", ""), e.get("args") or {}
        if e.get("cat") == "Node" and name.endswith("_kernel_time") and "op_name" in args and e["ts"] >= first:
            out.append([e["ts"], e["dur"], name[:-len("_kernel_time")], args["op_name"], args.get("provider", "?")])
    return out


def profile_tflite(np, folder, manifest, args):
    """LiteRT's op profile of the release's TFLite model on the first run of its check set."""
    feeds = runner.check_set(np, manifest, folder)[0][0]
    path = os.path.join(folder, manifest["model"])
    label, version = runner.load_tflite_interpreter()[1:]
    if label != "ai-edge-litert":
        fail("LiteRT's op profiler comes with ai-edge-litert, and this device has %s %s: pip install ai-edge-litert"
             % (label, version))
    try:
        doc = litert_profiler.profile(path, dict(zip([i["name"] for i in manifest["inputs"]], feeds)), args.runs,
                                      args.warmup, args.threads)
    except litert_profiler.LiteRtError as exc:
        fail("LiteRT's profiler cannot run the model (%s)" % exc)
    doc.pop("outputs")
    doc.update(ok=True, bundle=manifest.get("id"), model=manifest["model"], format="tflite", runtime_version=version,
               synthetic=(manifest.get("check_set") or {}).get("source") != "data")
    return doc


def profile(np, ort, folder, manifest, args):
    feeds = runner.check_set(np, manifest, folder)[0]
    tmp = tempfile.mkdtemp(prefix="studio-profile-")
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        if args.as_written:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(os.path.join(folder, manifest["model"]), opts,
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        for k in range(args.warmup):
            session.run(None, dict(zip(names, feeds[k % len(feeds)])))
        times = []
        for k in range(args.runs):
            start = time.perf_counter()
            session.run(None, dict(zip(names, feeds[k % len(feeds)])))
            times.append((time.perf_counter() - start) * 1000.0)
        with open(session.end_profiling()) as fh:
            events = json.load(fh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"ok": True, "bundle": manifest.get("id"), "model": manifest["model"], "runtime_version": ort.__version__,
            "providers": session.get_providers(), "samples": len(feeds),
            "synthetic": (manifest.get("check_set") or {}).get("source") != "data",
            "inputs": [[n, [int(d) for d in np.shape(x)]] for n, x in zip(names, feeds[0])],
            "times_ms": times, "events": compact(events, args.runs)}


def _onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError:
        fail("onnxruntime is not installed on this device")
    return ort


def main():
    parser = argparse.ArgumentParser(description="Profile a bundle's ONNX or TFLite model on its check set.")
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--as-written", action="store_true", help="without onnxruntime's graph optimizations")
    args = parser.parse_args()
    try:
        import numpy as np
    except ImportError:
        fail("numpy is not installed on this device")
    folder = os.path.abspath(args.bundle)
    try:
        with open(os.path.join(folder, "manifest.json")) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        fail("the release's manifest.json cannot be read (%s)" % type(exc).__name__)
    try:
        doc = profile_tflite(np, folder, manifest, args) if manifest.get("format") == "tflite" else \
            profile(np, _onnxruntime(), folder, manifest, args)
    except SystemExit:
        raise
    except Exception as exc:  # the model does not load or run here: say so, as JSON
        fail("the profile could not run the model: %s" % (" ".join(str(exc).split())[:300] or type(exc).__name__))
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
