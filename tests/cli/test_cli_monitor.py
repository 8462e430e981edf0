"""`studio check`, `studio monitor` and `studio history` as a user runs them, on two local devices (folders that
behave like boards), one of them throttled."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import zipfile

import pytest

from tests.conftest import run_cli

KEYS = {"device", "release", "verdict", "reason", "latency_ms_median", "latency_ms_p90", "fidelity", "checked_at"}


@pytest.fixture
def fleet_env(sample_bundles, tmp_path, monkeypatch):
    """Two local devices running the sample ONNX bundle: bench-1, and bench-slow whose runs take 30 ms more."""
    from studio.core.deploy import fleet, inventory

    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    devices = [inventory.Device(name="bench-1", kind="local", dir=str(tmp_path / "bench-1"), python=sys.executable,
                                tags=("bench",)),
               inventory.Device(name="bench-slow", kind="local", dir=str(tmp_path / "bench-slow"),
                                python=f"env STUDIO_DEMO_DELAY_MS=30 {sys.executable}", tags=("bench",))]
    for d in devices:
        inventory.add(d)
    pushed = fleet.push(sample_bundles["onnx"], devices, pubkey=sample_bundles["pub"])
    assert all(r.ok for r in pushed.results), pushed.results
    release = json.loads(zipfile.ZipFile(sample_bundles["onnx"]).read("manifest.json"))["id"]
    return env, release


def test_check_json_verdicts_and_exit_code(fleet_env):
    env, release = fleet_env
    done = run_cli("check", "--device", "bench-1", "--device", "bench-slow", "--runs", "10", "--json", env=env)
    assert done.returncode == 1, done.stderr  # one device is slower than its bundle promised
    found = {r["device"]: r for r in json.loads(done.stdout)}
    assert set(found) == {"bench-1", "bench-slow"} and all(set(r) >= KEYS for r in found.values())
    slow = found["bench-slow"]
    assert slow["verdict"] == "slower" and slow["latency_ms_median"] >= 30 and "promised" in slow["reason"]
    assert slow["release"] == release and found["bench-1"]["verdict"] in ("ok", "slower")
    assert slow["fidelity"][0]["cosine"] == pytest.approx(1.0, abs=1e-6)  # slow, but the same answers


def test_monitor_rounds_then_history_as_csv_and_json(fleet_env):
    env, release = fleet_env
    done = run_cli("monitor", "--tag", "bench", "--every", "1s", "--count", "2", "--runs", "5", env=env)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("DEVICE") for line in lines) == 2  # one fleet table per round
    slow = [line for line in lines if line.startswith("bench-slow")]
    assert len(slow) == 2 and "since" not in slow[0] and "since" in slow[1]  # the trend since the previous check
    as_csv = run_cli("history", "--device", "bench-slow", "--csv", env=env)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.returncode == 0 and len(rows) == 2 and set(rows[0]) >= KEYS
    assert {r["release"] for r in rows} == {release} and {r["verdict"] for r in rows} == {"slower"}
    as_json = json.loads(run_cli("history", "--device", "bench-slow", "--json", env=env).stdout)
    assert [r["checked_at"] for r in as_json] == [r["checked_at"] for r in rows]
    assert os.path.isfile(os.path.join(env["XDG_DATA_HOME"], "studio", "monitor.db"))


def test_an_unknown_device_and_a_bad_interval_are_one_line(fleet_env):
    env, _release = fleet_env
    for argv, words in ((("check", "--device", "nosuch"), "nosuch"),
                        (("monitor", "--tag", "bench", "--every", "soon"), "--every 'soon'")):
        done = run_cli(*argv, env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr
