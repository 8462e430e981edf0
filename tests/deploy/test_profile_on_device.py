"""`studio profile --device` against real sshd devices: the release the device runs is profiled there on its bundle's
check set (at the check set's shapes), its operators are those onnxruntime runs after optimizing the graph, their
times add up to the measured latency within 30%; a TFLite release is profiled by the device's LiteRT, naming the
operator XNNPACK left to LiteRT's kernels; a stale profiler on the device is replaced; a device that runs nothing and
one that cannot be reached are one line and exit 1."""
from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from studio.core.bundle.bundle import ExportSource, build_bundle, bundle_check_set, bundle_sample
from studio.core.deploy import fleet, inventory
from tests.conftest import run_cli
from tests.core.look_models import convstack
from tests.core.tflite_models import ARGMAX, CONVS, convstack_tflite


@pytest.fixture(scope="module")
def conv_bundle(tmp_path_factory) -> Path:
    """A bundle of the dynamic conv net whose check set runs at 1x3x40x24, a shape only the check set names."""
    root = tmp_path_factory.mktemp("profile-bundle")
    onnx.save(convstack(dynamic=True), root / "conv.onnx")
    np.savez(root / "data.npz", x=np.random.default_rng(0).standard_normal((4, 3, 40, 24)).astype(np.float32))
    src, data = ExportSource(root / "conv.onnx"), root / "data.npz"
    out = root / "conv.bundle.zip"
    build_bundle(src, out, name="conv", version="1.0", sample=bundle_sample(src, data),
                 checks=bundle_check_set(src, data, count=4))
    return out


def push(bundle: Path, device) -> None:
    result = fleet.push(bundle, [device])
    assert all(r.ok for r in result.results), result.results


def ran_by_onnxruntime(model: Path, tmp_path: Path) -> Counter:
    """onnxruntime's own account of the graph it runs: the op types of the model it writes after optimizing."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node)


def test_the_running_release_is_profiled_on_the_device_at_its_check_sets_shapes(make_device, conv_bundle, tmp_path):
    dev = make_device(0)
    push(conv_bundle, dev)
    installed = Path(dev.dir) / "current" / "model.onnx"
    (Path(dev.dir) / ".studio" / "profiler.py").write_text("raise SystemExit('an older profiler')\n")  # stale copy
    done = run_cli("profile", "--device", dev.name, "--json", "--runs", "10", "--top", "100")
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout)
    assert p["device"] == dev.name and p["model"].startswith(f"{dev.name}:{dev.dir}/releases/")
    assert {o["op"]: o["nodes"] for o in p["op_types"]} == ran_by_onnxruntime(installed, tmp_path)
    assert p["inputs"] == [{"name": "x", "shape": [1, 3, 40, 24]}] and not p["synthetic"]
    assert p["runtime"] == f"onnxruntime {ort.__version__}" and p["providers"] == ["CPUExecutionProvider"]
    per_op = sum(o["ms"] for o in p["op_types"])
    assert per_op == pytest.approx(p["op_ms"]) and abs(per_op - p["latency_ms"]) <= 0.3 * p["latency_ms"], p
    assert p["node_count"] == len(p["nodes"]) and p["runs"] == 10
    text = run_cli("profile", "--device", dev.name, "--runs", "3")
    assert text.returncode == 0 and f"on device {dev.name}" in text.stdout.splitlines()[0], text.stderr
    assert "by operator type:" in text.stdout and "Conv" in text.stdout


def test_a_tflite_release_is_profiled_by_the_devices_litert(make_device, tmp_path):
    dev = make_device(1)
    model = convstack_tflite(tmp_path / "conv.tflite")
    bundle = tmp_path / "conv.bundle.zip"
    build_bundle(ExportSource(model), bundle, name="conv", version="1.0",
                 checks=bundle_check_set(ExportSource(model), None, count=2))
    push(bundle, dev)
    (Path(dev.dir) / ".studio" / "litert_profiler.py").write_text("raise SystemExit('an older copy')\n")
    done = run_cli("profile", "--device", dev.name, "--json", "--runs", "10")
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout)
    assert p["device"] == dev.name and p["model"].startswith(f"{dev.name}:{dev.dir}/releases/")
    assert p["model"].endswith("/model.tflite") and p["runtime"].startswith("ai-edge-litert ")
    assert p["inputs"] == [{"name": "image", "shape": [1, 48, 48, 3]}] and p["node_count"] == len(CONVS) + 1
    assert [(n["name"], n["op"]) for n in p["fallback"]] == [(ARGMAX, "ARG_MAX")]
    assert abs(p["op_ms"] - p["latency_ms"]) <= 0.3 * p["latency_ms"], p
    as_written = run_cli("profile", "--device", dev.name, "--no-graph-optimizations")
    assert as_written.returncode == 1 and "--no-graph-optimizations is onnxruntime's" in as_written.stderr

def test_a_device_that_runs_nothing_or_cannot_be_reached_is_one_line(make_device):
    empty = make_device(2)
    done = run_cli("profile", "--device", empty.name, "--json")
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert f"{empty.name} runs no release: push a bundle to it first" in line
    with socket.socket() as s:  # a port nothing listens on any more: a stopped device
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inventory.add(inventory.Device(name="stopped", host="127.0.0.1", port=port, dir="/opt/studio-x"))
    done = run_cli("profile", "--device", "stopped")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert "stopped" in line and "check that stopped is on and reachable" in line
