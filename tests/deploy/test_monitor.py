"""`studio check` against real sshd devices: rows per check, slower, drift, unreachable, an older bundle."""
from __future__ import annotations

import json
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from studio.core.bundle.bundle import ExportSource, build_bundle
from studio.core.deploy import fleet, inventory
from studio.core.monitor.check import CheckOptions, check_devices
from studio.core.monitor.history import History
from studio.core.monitor.records import Verdict

OPTIONS = CheckOptions(runs=10)


def tiny(path: Path, seed: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((16, 6)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 6])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor-bundles")
    out = {}
    for version in ("1.0", "2.0"):
        out[version] = root / f"tiny-{version}.bundle.zip"
        build_bundle(ExportSource(tiny(root / "tiny.onnx", 0)), out[version], name="tiny", version=version)
    out["other"] = tiny(root / "other.onnx", 1)
    out["old"] = as_schema_2(out["1.0"], root / "tiny-old.bundle.zip")
    return out


def as_schema_2(bundle: Path, out: Path) -> Path:
    """The same bundle as a Studio of manifest schema 2 wrote it: a sample, no check set, no promise."""
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    members.pop("checks.npz")
    for key in ("check_set", "promise"):
        manifest.pop(key)
    del manifest["files"]["checks.npz"]
    manifest.update(schema_version=2, version="0.9", id=manifest["id"].replace("-1.0-", "-0.9-"))
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def push(bundle: Path, *devices) -> None:
    result = fleet.push(bundle, list(devices))
    assert all(r.ok for r in result.results), result.results




def test_two_checks_two_rows_a_slow_and_a_drifted_device_and_an_unreachable_one(make_device, bundles, tmp_path):
    good = make_device(0)
    slow = make_device(1, python=f"env STUDIO_DEMO_DELAY_MS=30 {sys.executable}")
    drifted = make_device(2)
    with socket.socket() as s:  # a port nothing listens on any more: a stopped device
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stopped = inventory.Device(name="stopped", host="127.0.0.1", port=port, dir="/opt/studio-x", tags=("lab",))
    push(bundles["1.0"], good, slow, drifted)
    installed = Path(drifted.dir) / "current" / "model.onnx"
    installed.write_bytes(bundles["other"].read_bytes())  # another model that still runs
    history = History(tmp_path / "monitor.db")
    seen = []
    first = check_devices([good, slow, drifted, stopped], OPTIONS, history=history, on_result=seen.append)
    verdicts = {r.device: r for r in first}
    assert {r.device for r in seen} == {good.name, slow.name, drifted.name, "stopped"}
    assert verdicts["stopped"].verdict == Verdict.UNREACHABLE and verdicts["stopped"].release is None
    assert verdicts[slow.name].verdict == Verdict.SLOWER and verdicts[slow.name].latency_ms_median >= 30
    assert "promised" in verdicts[slow.name].reason
    assert verdicts[drifted.name].verdict == Verdict.DRIFT, verdicts[drifted.name].reason
    assert verdicts[good.name].verdict in (Verdict.OK, Verdict.SLOWER)  # a busy 2-core machine may be slower
    assert verdicts[good.name].fidelity[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert verdicts[good.name].facts.runtime == "onnxruntime" and verdicts[good.name].peak_memory_mb > 0
    promised = json.loads(zipfile.ZipFile(bundles["1.0"]).read("manifest.json"))["promise"]["fidelity"]
    assert verdicts[good.name].promise_cosine == min(f["cosine"] for f in promised)  # drawn on the Monitor chart
    push(bundles["2.0"], good)
    second = {r.device: r for r in check_devices([good, slow], OPTIONS, history=history)}
    assert second[slow.name].verdict == Verdict.SLOWER  # also behind, and slower names the worse problem first
    assert "newest release is 2.0" in second[slow.name].reason
    rows = history.rows(good.name)
    manifest_ids = [json.loads(zipfile.ZipFile(bundles[v]).read("manifest.json"))["id"] for v in ("1.0", "2.0")]
    assert [r.release for r in rows] == manifest_ids
    history.close()


def test_an_old_schema_2_bundle_is_checked_with_its_sample(make_device, bundles, tmp_path):
    device = make_device(3)
    push(bundles["old"], device)
    [result] = check_devices([device], OPTIONS, history=History(tmp_path / "m.db"))
    assert result.verdict in (Verdict.OK, Verdict.SLOWER) and result.verdict != Verdict.DRIFT
    assert len(result.fidelity) == 1 and result.fidelity[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert result.promise_latency_ms is None and result.promise_cosine is None  # it promised nothing
