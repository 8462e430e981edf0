"""Inventory, the local demo device, fleet rules (canary, max-fail), journal recovery and device latency in sweeps.
No sshd needed: the local-folder transport follows the same steps as SSH."""
import json
import os
import sys
import tomllib
from pathlib import Path

import pytest

from studio.core.deploy import fleet, inventory
from studio.core.deploy.inventory import Device, DeviceError
from tests.conftest import ROOT, run_cli


def local(tmp_path, name, **kw):
    device = Device(name=name, kind="local", dir=str(tmp_path / name), **{"python": sys.executable, **kw})
    inventory.add(device)
    return device


def test_inventory_cli_uses_the_config_dir(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    key = tmp_path / "id_ed25519"
    key.write_text("a key")
    relative = os.path.relpath(key, ROOT)  # run_cli runs in the repository root
    added = run_cli("devices", "add", "pi4", "--host", "10.0.0.7", "--port", "2200", "--user", "pi", "--key",
                    relative, "--dir", "/srv/models", "--tag", "bench", "--tag", "lab", env=env)
    assert added.returncode == 0 and "studio devices trust pi4" in added.stdout
    doc = tomllib.loads((tmp_path / "cfg" / "studio" / "devices.toml").read_text())
    assert doc["devices"]["pi4"] == {"host": "10.0.0.7", "port": 2200, "user": "pi", "key": str(key),
                                     "dir": "/srv/models", "tags": ["bench", "lab"], "python": "python3", "keep": 3,
                                     "kind": "ssh"}
    listed = run_cli("devices", "list", env=env)
    assert "pi@10.0.0.7:2200" in listed.stdout and "NOT TRUSTED" in listed.stdout
    dup = run_cli("devices", "add", "pi4", "--host", "x", env=env)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad = run_cli("devices", "add", "../x", "--host", "x", env=env)
    assert bad.returncode == 1 and "device name '../x'" in bad.stderr
    assert run_cli("devices", "remove", "pi4", env=env).returncode == 0
    gone = run_cli("devices", "remove", "pi4", env=env)
    assert gone.returncode == 1 and "no device named 'pi4'" in gone.stderr


@pytest.mark.parametrize("folder", ["../../etc", "/", "/etc", "", "studio", "/opt/studio/../../etc", "/opt//studio",
                                    "/opt/studio/", "/usr", "/usr/lib/studio", "/lib64", "/boot/x", "/proc/1",
                                    "/sys/x", "/dev/shm/s", "/var/lib/dpkg", "/var/lib/dpkg/info", "/opt"])
def test_install_dir_must_be_absolute_plain_and_not_a_system_folder(tmp_path, folder):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    added = run_cli("devices", "add", "pi", "--host", "10.0.0.7", "--dir", folder, env=env)
    lines = added.stderr.strip().splitlines()
    assert added.returncode == 1 and len(lines) == 1 and f"install dir '{folder}'" in lines[0], added.stderr
    assert not (tmp_path / "cfg" / "studio" / "devices.toml").exists()


@pytest.mark.parametrize("folder", ["/opt/studio", "/usr/local/studio", "/home/pi/models", "/data/edge-1"])
def test_plain_install_dirs_are_accepted(folder):
    assert Device(name="pi", host="x", dir=folder).dir == folder


def test_missing_key_file_is_named(tmp_path):
    added = run_cli("devices", "add", "pi", "--host", "x", "--key", str(tmp_path / "nope"),
                    env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert added.returncode == 1 and f"{tmp_path / 'nope'}: no such key file" in added.stderr


def test_canary_failure_stops_the_rollout(tmp_path, deploy_bundles):
    broken = local(tmp_path, "canary-broken", python=f"{sys.executable} -S")  # no numpy: its check fails
    others = [local(tmp_path, f"rest{i}") for i in range(3)]
    result = fleet.push(deploy_bundles["1.0"], [broken, *others], canary=1)
    assert [r.status for r in result.results] == ["failed", "skipped", "skipped", "skipped"]
    assert result.results[1].message == ("Not attempted: a canary device failed; nothing was changed on it. Push again"
                                         " once that is resolved") and not result.ok


def test_max_fail_stops_launching_new_pushes(tmp_path, deploy_bundles):
    bad = [local(tmp_path, f"bad{i}", python=f"{sys.executable} -S") for i in range(2)]
    good = [local(tmp_path, f"good{i}") for i in range(3)]
    result = fleet.push(deploy_bundles["1.0"], bad + good, concurrency=1, max_fail=25)
    statuses = [r.status for r in result.results]
    assert statuses[:2] == ["failed", "failed"] and statuses[2:] == ["skipped"] * 3
    assert "--max-fail 25%" in result.results[4].message
    fine = fleet.push(deploy_bundles["1.0"], good, concurrency=3, max_fail=25)
    assert fine.ok and fine.counts() == {"installed": 3}


def test_interrupted_push_is_resolved_on_the_next_connect(tmp_path, deploy_bundles):
    dev = local(tmp_path, "board")
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    meta = Path(dev.dir) / ".studio"
    half = Path(dev.dir) / "releases" / "mnist-2.0-000000000000"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"half")
    (meta / "journal.json").write_text(json.dumps({"state": "testing", "bundle": half.name, "time": 0}))
    status = run_cli("status", "--device", "board")
    assert f"an interrupted push of {half.name} is left" in status.stdout and "runs mnist 1.0" in status.stdout
    r = fleet.push(deploy_bundles["2.0"], [dev]).results[0]
    assert r.status == "installed" and r.recovered["bundle"] == half.name and r.recovered["phase"] == "testing"
    assert not half.exists() and not (meta / "journal.json").exists()


def test_keep_n_releases_never_deletes_current_or_previous(tmp_path, deploy_bundles, sample_bundles):
    from studio.core.bundle.bundle import build_bundle, resolve_source

    dev = local(tmp_path, "keeper", keep=2)
    ids = []
    for v in ("1", "2", "3", "4"):
        path = tmp_path / f"m{v}.bundle.zip"
        ids.append(build_bundle(resolve_source(sample_bundles["onnx_dir"]), path, name="m", version=v)["id"])
        assert fleet.push(path, [dev]).ok
    kept = sorted(p.name for p in (Path(dev.dir) / "releases").iterdir())
    assert kept == sorted(ids[2:])  # current (v4) and previous (v3)


def test_demo_device_and_sweep_device_latency(tmp_path, shared_models, samples):
    from studio.core.deploy.bench import sweep_bench
    from studio.core.recipe.grid import Grid
    from studio.core.sweep.sweep import run_sweep

    demo = inventory.demo_device(tmp_path / "demo")
    inventory.add(demo)
    doc = run_sweep(shared_models / "onnx" / "mnist.onnx", Grid(quant=("none", "int8")), samples["dataset"],
                    tmp_path / "run", device_bench=sweep_bench("demo"))
    for c in doc["candidates"]:
        assert c["device_latency_ms_median"] > 0 and c["device"]["runtime"] == "onnxruntime"
        assert c["latency_ms_median"] > 0
    assert "device_latency_ms_median" in (tmp_path / "run" / "results.csv").read_text().splitlines()[0]


def test_unknown_device_and_tag(tmp_path):
    with pytest.raises(DeviceError, match="no device named 'nope'"):
        inventory.get("nope")
    with pytest.raises(DeviceError, match="no device has the tag 'ghost'"):
        inventory.select(tag="ghost")
