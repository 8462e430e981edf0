"""Pushes to real OpenSSH servers: install, resume, host keys, corrupt bundles, failed checks, full disks, locks."""
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.bundle.bundle import BundleError
from studio.core.deploy import fleet, ops
from studio.core.deploy.push import push_one
from studio.core.deploy.transport import connect, open_session
from tests.conftest import run_cli


def manifest_id(bundle):
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        return json.loads(zf.read("manifest.json"))["id"]


def current(device):
    link = Path(device.dir) / "current"
    return os.readlink(link) if link.is_symlink() else None


def settled(device):
    """Wait until no agent holds the device's lock (an agent whose link dropped finishes its step, then exits)."""
    import fcntl

    with open(Path(device.dir) / ".studio" / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fcntl.flock(fh, fcntl.LOCK_UN)


def test_push_installs_checks_switches_and_rolls_back(make_device, deploy_bundles):
    dev = make_device(0)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    r = fleet.push(v1, [dev]).results[0]
    assert r.status == "installed" and r.message == "Installed v1.0, check passed", r.detail
    assert current(dev) == f"releases/{manifest_id(v1)}" and r.check["ok"] and r.check["runtime"] == "onnxruntime"
    assert (Path(dev.dir) / "current" / "model.onnx").is_file()
    again = fleet.push(v1, [dev]).results[0]
    assert again.status == "unchanged" and again.bytes_sent == 0 and again.message == "Already runs v1.0: nothing to do"
    r2 = fleet.push(v2, [dev]).results[0]
    assert r2.status == "installed" and r2.previous == manifest_id(v1)
    st = ops.status([dev])[0]
    assert st["current"]["version"] == "2.0" and st["previous"]["version"] == "1.0"
    back = ops.rollback(dev)
    assert back["current"] == manifest_id(v1) and current(dev) == f"releases/{manifest_id(v1)}"
    assert not list((Path(dev.dir) / ".studio" / "incoming").iterdir())


def test_killed_upload_resumes_and_current_never_points_at_a_partial_release(make_device, deploy_bundles, ssh_pool):
    dev = make_device(1)
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    big = deploy_bundles["big"]
    size = big.stat().st_size
    dropped = []

    def kill_at_half(t, pos, total):
        if pos >= total // 2 and not dropped:
            dropped.append(ssh_pool["servers"][1].drop_sessions())  # the connection dies mid-upload

    r = fleet.push(big, [dev], on_upload=kill_at_half).results[0]
    assert r.status == "failed" and dropped[0] > 0 and r.message == (
        "Not installed: the connection was lost at the upload step; the device still runs mnist v1.0. Push again:"
        " what already reached the device is not sent again"), r.steps
    settled(dev)
    assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"
    parts = list((Path(dev.dir) / ".studio" / "incoming").glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < size
    partial = parts[0].stat().st_size
    assert not (Path(dev.dir) / "releases" / manifest_id(big)).exists()
    again = fleet.push(big, [dev]).results[0]
    assert again.status == "installed", again.detail
    assert again.resumed_from == partial and again.bytes_sent == size - partial
    assert current(dev) == f"releases/{manifest_id(big)}"


def test_unknown_and_changed_host_keys_are_refused(make_device, deploy_bundles, ssh_pool):
    dev = make_device(2, trust=False)
    r = fleet.push(deploy_bundles["1.0"], [dev]).results[0]
    assert r.status == "failed" and "unknown host key" in r.detail and "SHA256:" in r.detail
    assert r.message.startswith("Not installed: the device is not trusted yet") and not Path(dev.dir).exists()
    fingerprint = r.detail.split("fingerprint is ")[1].split(".")[0]
    wrong = run_cli("devices", "trust", dev.name, "--fingerprint", "SHA256:AAAA")
    assert wrong.returncode == 1 and "not trusted" in wrong.stderr
    ok = run_cli("devices", "trust", dev.name, "--fingerprint", fingerprint)
    assert ok.returncode == 0 and fingerprint in ok.stdout
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    server = ssh_pool["servers"][2]
    server.new_host_key()
    server.restart()
    changed = fleet.push(deploy_bundles["2.0"], [dev]).results[0]
    assert changed.status == "failed" and "HOST KEY HAS CHANGED" in changed.detail
    assert fingerprint in changed.detail and changed.detail.count("SHA256:") == 2
    assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"


def test_corrupt_bundle_is_refused_before_any_connection(make_device, deploy_bundles, tmp_path):
    dev = make_device(3)
    bad = tmp_path / "bad.bundle.zip"
    data = bytearray(deploy_bundles["1.0"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        fleet.push(bad, [dev])
    assert not Path(dev.dir).exists()  # nothing reached the device


def test_failed_smoke_test_leaves_the_previous_release_active(make_device, deploy_bundles):
    dev = make_device(4)
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    bare = make_device(4, dir=dev.dir, python=f"{sys.executable} -S")  # same board, a Python without numpy
    r = fleet.push(deploy_bundles["2.0"], [bare]).results[0]
    assert r.status == "failed" and "numpy is not installed on this device" in r.detail
    assert r.message == ("Not installed: the model check failed on the device; the device still runs mnist v1.0. The"
                         " device's runtime cannot run this bundle: see the reason below")
    assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"
    assert not (Path(dev.dir) / "releases" / manifest_id(deploy_bundles["2.0"])).exists()


def test_full_disk_gives_a_clear_error_and_changes_nothing(make_device, deploy_bundles, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        dev = make_device(5, dir=str(tiny / "studio"))
        assert fleet.push(deploy_bundles["1.0"], [dev]).ok
        r = fleet.push(deploy_bundles["big"], [dev]).results[0]
        assert r.status == "failed" and "device disk is full" in r.detail
        assert r.message == ("Not installed: the device's disk is full; the device still runs mnist v1.0. Free space in"
                             f" {dev.dir} on the device, then push again")
        assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"
        assert not list((tiny / "studio" / ".studio" / "incoming").iterdir())
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def test_a_second_push_is_refused_while_one_holds_the_lock(make_device, deploy_bundles):
    dev = make_device(6)
    from studio.core.base.hashing import sha256_file
    from studio.core.bundle.bundle import verify_bundle

    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok
    manifest = verify_bundle(v2).manifest

    async def scenario():
        t = await connect(dev)
        holder = await open_session(t)  # another push's session holds the device lock
        await holder.call("prepare", manifest["id"], sha256_file(v2), v2.stat().st_size)
        blocked = await push_one(dev, v2, manifest, sha256_file(v2))
        during = run_cli("status", "--device", dev.name).stdout
        await holder.close()  # it ends without a switch: its agent resolves the journal as it exits
        await t.close()
        settled(dev)
        return blocked, during, run_cli("status", "--device", dev.name).stdout, await push_one(
            dev, v2, manifest, sha256_file(v2))
    blocked, during, idle, after = asyncio.run(scenario())
    assert "runs mnist 1.0  a push is in progress" in during
    assert idle.strip().endswith("runs mnist 1.0"), idle
    assert blocked.status == "failed" and blocked.running == "mnist v1.0" and blocked.message == (
        "Not installed: another push to this device is in progress; the device runs mnist v1.0. Wait until it is"
        " done, then push again")
    assert after.status == "installed" and current(dev) == f"releases/{manifest['id']}"


def test_fleet_of_20_with_a_frozen_device(make_device, deploy_bundles):
    from tests.deploy.sshd import SilentServer

    frozen = SilentServer()
    try:
        for i in range(19):
            make_device(i, tags=("fleet",))
        make_device(0, trust=False, port=frozen.port, tags=("fleet",), name="frozen-board")
        result = run_cli("push", str(deploy_bundles["1.0"]), "--tag", "fleet", "--concurrency", "10", "--json",
                         timeout=240)
    finally:
        frozen.close()
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    statuses = [r["status"] for r in doc["results"]]
    assert statuses.count("installed") == 19 and statuses.count("failed") == 1
    bad = next(r for r in doc["results"] if r["device"] == "frozen-board")
    assert bad["message"] == ("Not installed: the device cannot be reached; nothing was changed on it. Check that it is"
                              " on and on the network, then push again")
    assert bad["seconds"] < 30


def test_probe_status_and_bench(make_device, deploy_bundles):
    dev = make_device(7)
    info = ops.probe(dev)
    assert info["arch"] and info["python"] and "onnxruntime" in info["runtimes"] and info["free_bytes"] > 0
    assert info["current"] is None
    lat = ops.bench(dev, deploy_bundles["1.0"], runs=10)
    assert lat["median_ms"] > 0 and lat["runs"] == 10 and lat["runtime"] == "onnxruntime"
    assert current(dev) is None  # bench installs nothing
    result = run_cli("status", "--device", dev.name)
    assert result.returncode == 0 and "nothing installed" in result.stdout
