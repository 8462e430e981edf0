"""Faults at every step of a push against real OpenSSH servers: the link dropped (the session's sshd killed) at each
phase, a frozen device, a disk that fills during the upload, a host key of another type, a damaged previous release.
Every outcome is checked against the device's own folder, read directly."""
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.deploy import fleet, ops
from studio.core.deploy.push import Phase
from tests.conftest import run_cli
from tests.deploy.test_push import current, manifest_id, settled

RESUME = "Push again: what already reached the device is not sent again"


def device_agent(folder) -> str:
    """The agent as Studio uploaded it to the device (beside the bundle rules it imports)."""
    return str(Path(folder) / ".studio" / "agent.py")


def drop_at(server, phase: Phase, switch_first=None):
    """An on_phase hook that kills the link once, as `phase` starts (the device switched first, for SWITCH)."""
    dropped = []

    def hook(at, transport):
        if at is phase and not dropped:
            if switch_first is not None:  # the device does the switch, then its answer is lost with the link
                folder = transport.device.dir
                subprocess.run([sys.executable, device_agent(folder), folder, "activate", switch_first,
                                str(transport.device.keep)], check=True, capture_output=True)
            dropped.append(server.drop_sessions())
    return hook, dropped


def no_push_left(dev, bundle_id):
    """After the device's agent ended: no journal, no half-unpacked release, `current` whole."""
    settled(dev)
    meta = Path(dev.dir) / ".studio"
    assert not (meta / "journal.json").exists()
    assert not [p for p in (Path(dev.dir) / "releases").iterdir() if p.name.endswith(".tmp")]
    return (Path(dev.dir) / "releases" / bundle_id).exists()


@pytest.mark.parametrize("phase", [Phase.CONNECT, Phase.UPLOAD, Phase.UNPACK, Phase.CHECK])
def test_link_lost_before_the_switch_reports_the_old_release_and_the_repush_sends_only_what_is_missing(
        make_device, deploy_bundles, ssh_pool, phase):
    server = ssh_pool["servers"][8]
    dev = make_device(8)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok
    hook, dropped = drop_at(server, phase)
    r = fleet.push(v2, [dev], on_phase=hook).results[0]
    assert dropped[0] > 0 and r.status == "failed" and "\n" not in r.message
    assert r.message.startswith(f"Not installed: the connection was lost at the {phase} step; the device")
    assert r.message.endswith(f"runs mnist v1.0. {RESUME}") and r.running == "mnist v1.0", r.steps
    assert not no_push_left(dev, manifest_id(v2)) and current(dev) == f"releases/{manifest_id(v1)}"
    again = fleet.push(v2, [dev]).results[0]
    assert again.status == "installed" and current(dev) == f"releases/{manifest_id(v2)}"
    # the link dropped once the upload was complete: the zip on the device is checked, not sent again
    complete = phase in (Phase.UNPACK, Phase.CHECK)
    assert again.bytes_sent == (0 if complete else v2.stat().st_size), again.steps


def test_link_lost_while_the_device_runs_the_model_check(make_device, deploy_bundles, ssh_pool):
    import threading
    import time

    server = ssh_pool["servers"][8]
    dev = make_device(8)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok
    journal = Path(dev.dir) / ".studio" / "journal.json"

    def drop_once_testing():  # the agent journals "testing" as it starts the model: the link goes while it runs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if json.loads(journal.read_text()).get("state") == "testing":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.001)
        server.drop_sessions()

    watcher = threading.Thread(target=drop_once_testing, daemon=True)
    hook = {Phase.CHECK: watcher.start}
    r = fleet.push(v2, [dev], on_phase=lambda phase, t: hook.pop(phase, lambda: None)()).results[0]
    watcher.join()
    assert r.status == "failed" and r.running == "mnist v1.0" and "\n" not in r.message, r
    assert r.message == (f"Not installed: the connection was lost at the model check step; the device still runs"
                         f" mnist v1.0. {RESUME}")
    assert not no_push_left(dev, manifest_id(v2))  # the agent finished the check, then resolved the push itself
    assert current(dev) == f"releases/{manifest_id(v1)}"
    again = fleet.push(v2, [dev]).results[0]
    assert again.status == "installed" and again.bytes_sent == 0


def test_link_lost_right_after_the_switch_reports_the_new_release(make_device, deploy_bundles, ssh_pool):
    server = ssh_pool["servers"][9]
    dev = make_device(9)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok
    hook, dropped = drop_at(server, Phase.SWITCH, switch_first=manifest_id(v2))
    r = fleet.push(v2, [dev], on_phase=hook).results[0]
    assert dropped[0] > 0 and current(dev) == f"releases/{manifest_id(v2)}"
    assert r.status == "installed" and r.running == "mnist v2.0" and r.message == "Installed v2.0, check passed"
    assert any("after the switch" in step for step in r.steps)
    no_push_left(dev, manifest_id(v2))
    st = ops.status([dev])[0]
    assert st["current"]["version"] == "2.0" and st["previous"]["version"] == "1.0" and not st["interrupted"]


def test_a_device_that_freezes_during_the_switch_is_not_claimed_either_way(make_device, deploy_bundles, ssh_pool):
    server = ssh_pool["servers"][9]
    dev = make_device(9)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok

    def freeze_after_switching(phase, transport):
        if phase is Phase.SWITCH:  # the device switches, then hangs before its answer leaves
            subprocess.run([sys.executable, device_agent(dev.dir), dev.dir, "activate", manifest_id(v2), str(dev.keep)],
                           check=True, capture_output=True)
            server.freeze()

    try:
        r = fleet.push(v2, [dev], on_phase=freeze_after_switching).results[0]
    finally:
        server.thaw()
    assert current(dev) == f"releases/{manifest_id(v2)}" and r.status == "failed" and r.running is None
    assert r.message == ("Not confirmed: the connection was lost at the switch step; it could not be asked again: it"
                         " runs mnist v2.0 if the switch was done, else still mnist v1.0; see `studio status --device"
                         f" {dev.name}` once it answers. {RESUME}"), r.detail
    settled(dev)
    assert fleet.push(v2, [dev]).results[0].status == "unchanged"


def test_link_lost_during_cleanup_still_reports_the_install(make_device, deploy_bundles, ssh_pool):
    dev = make_device(9)
    v1 = deploy_bundles["1.0"]
    hook, dropped = drop_at(ssh_pool["servers"][9], Phase.CLEANUP)
    r = fleet.push(v1, [dev], on_phase=hook).results[0]
    assert dropped[0] > 0 and r.status == "installed" and current(dev) == f"releases/{manifest_id(v1)}"
    no_push_left(dev, manifest_id(v1))


def test_fleet_with_drops_at_every_phase_reports_every_device(make_device, deploy_bundles, ssh_pool):
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    plan = {12: Phase.CONNECT, 13: Phase.UPLOAD, 14: Phase.UNPACK, 15: Phase.CHECK, 16: Phase.SWITCH, 17: None}
    devices = {i: make_device(i, tags=("drops",)) for i in plan}
    assert fleet.push(v1, list(devices.values())).ok
    hooks = {devices[i].name: drop_at(ssh_pool["servers"][i], phase,
                                      manifest_id(v2) if phase is Phase.SWITCH else None)[0]
             for i, phase in plan.items() if phase is not None}

    def on_phase(phase, transport):
        if transport.device.name in hooks:
            hooks[transport.device.name](phase, transport)

    result = fleet.push(v2, list(devices.values()), concurrency=6, on_phase=on_phase)
    assert [r.device for r in result.results] == [d.name for d in devices.values()]
    for (i, phase), r in zip(plan.items(), result.results, strict=True):
        truth = current(devices[i])
        runs = "mnist v2.0" if truth == f"releases/{manifest_id(v2)}" else "mnist v1.0"
        assert r.running == runs and "\n" not in r.message, (phase, r)
        if phase in (None, Phase.SWITCH):
            assert r.status == "installed" and runs == "mnist v2.0"
        else:
            assert r.status == "failed" and r.message.endswith(f"runs {runs}. {RESUME}") and runs == "mnist v1.0"
        no_push_left(devices[i], manifest_id(v2))


def test_frozen_device_mid_upload_fails_in_one_line_and_resumes(make_device, deploy_bundles, ssh_pool, caplog,
                                                                 capfd):
    server = ssh_pool["servers"][10]
    dev = make_device(10)
    big = deploy_bundles["big"]
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    frozen = []

    def freeze_at_half(t, pos, total):
        if pos >= total // 2 and not frozen:
            server.freeze()
            frozen.append(pos)

    try:
        r = fleet.push(big, [dev], on_upload=freeze_at_half).results[0]
        gc.collect()  # a task that died with the link reports itself when it is collected
    finally:
        server.thaw()
    err = capfd.readouterr().err
    assert frozen and r.status == "failed" and r.seconds < 60
    assert r.message == ("Not installed: the connection was lost at the upload step; it could not be asked again, but"
                         f" the push stopped before the switch, so it still runs mnist v1.0. {RESUME}")
    assert "Task exception" not in err and "Traceback" not in err
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]
    settled(dev)
    again = fleet.push(big, [dev]).results[0]
    assert again.status == "installed" and again.resumed_from > 0 and again.bytes_sent == big.stat().st_size - \
        again.resumed_from


@pytest.fixture
def tmpfs(tmp_path):
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_filling_during_the_upload_says_so_and_removes_the_partial_file(make_device, deploy_bundles, tmpfs):
    dev = make_device(11, dir=str(tmpfs / "studio"))
    big = deploy_bundles["big"]
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    filler = tmpfs / "filler"

    def fill(t, pos, total):
        if not filler.exists():  # something else on the device takes the space while the upload runs
            with open(filler, "wb") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize - (1 << 19))

    r = fleet.push(big, [dev], on_upload=fill).results[0]
    settled(dev)
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    need = int(big.stat().st_size * 2.5) + (1 << 20)
    assert r.status == "failed" and r.detail == (f"device disk is full: {need / 1e6:.1f} MB needed in {dev.dir},"
                                                 f" {free / 1e6:.1f} MB free (the partial upload was removed)")
    assert r.message == ("Not installed: the device's disk is full; the device still runs mnist v1.0. Free space in"
                         f" {dev.dir} on the device, then push again")
    assert not list((Path(dev.dir) / ".studio" / "incoming").iterdir())
    assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"
    status = run_cli("status", "--device", dev.name)
    assert status.returncode == 0 and status.stdout.strip().endswith("runs mnist 1.0"), status.stdout
    filler.unlink()
    assert fleet.push(big, [dev]).ok


def test_host_key_of_another_type_is_a_changed_host_key(make_device, deploy_bundles, ssh_pool):
    server = ssh_pool["servers"][18]
    dev = make_device(18)
    assert fleet.push(deploy_bundles["1.0"], [dev]).ok
    old = subprocess.run(["ssh-keygen", "-lf", str(server.root / "host_key.pub")], capture_output=True, text=True,
                         check=True).stdout.split()[1]
    server.new_host_key("ecdsa")
    server.restart()
    new = subprocess.run(["ssh-keygen", "-lf", str(server.root / "host_key.pub")], capture_output=True, text=True,
                         check=True).stdout.split()[1]
    r = fleet.push(deploy_bundles["2.0"], [dev]).results[0]
    assert r.status == "failed" and r.detail.startswith(f"HOST KEY HAS CHANGED for {dev.name}")
    assert old in r.detail and new in r.detail and "ecdsa-sha2-nistp256" in r.detail
    assert r.message == ("Not installed: the device's identity (host key) has changed; nothing was changed on it. If"
                         " the device was reinstalled, check its new key and run `studio devices trust"
                         f" {dev.name}`; otherwise do not push to it")
    assert current(dev) == f"releases/{manifest_id(deploy_bundles['1.0'])}"


def test_rollback_refuses_a_damaged_previous_release_and_status_flags_it(make_device, deploy_bundles):
    dev = make_device(19)
    v1, v2 = deploy_bundles["1.0"], deploy_bundles["2.0"]
    assert fleet.push(v1, [dev]).ok and fleet.push(v2, [dev]).ok
    model = Path(dev.dir) / "releases" / manifest_id(v1) / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    back = run_cli("rollback", "--device", dev.name)
    assert back.returncode == 1 and len(back.stderr.strip().splitlines()) == 1
    assert f"the previous release {manifest_id(v1)} is damaged" in back.stderr
    assert "model.onnx does not match its manifest" in back.stderr
    assert current(dev) == f"releases/{manifest_id(v2)}"
    status = run_cli("status", "--device", dev.name, "--json")
    row = json.loads(status.stdout)[0]
    assert row["damaged"] == {manifest_id(v1): "model.onnx does not match its manifest"}
    shown = run_cli("status", "--device", dev.name).stdout
    assert f"DAMAGED release {manifest_id(v1)}: model.onnx does not match its manifest" in shown
    model.unlink()
    assert f"{manifest_id(v1)}: model.onnx is missing" in run_cli("status", "--device", dev.name).stdout


def test_cli_fleet_push_with_links_dropped_mid_push_prints_every_device_and_the_summary(make_device, deploy_bundles,
                                                                                       ssh_pool):
    import threading
    import time

    v1, big = deploy_bundles["1.0"], deploy_bundles["big"]
    devices = {i: make_device(i, tags=("cli-drops",)) for i in (5, 6, 7)}
    assert fleet.push(v1, list(devices.values())).ok

    def drop_once_uploading(i):  # whichever step it has reached by then, the link of device i goes
        incoming = Path(devices[i].dir) / ".studio" / "incoming"
        deadline = time.monotonic() + 120
        while not list(incoming.glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.002)
        ssh_pool["servers"][i].drop_sessions()

    watchers = [threading.Thread(target=drop_once_uploading, args=(i,), daemon=True) for i in (5, 6)]
    for w in watchers:
        w.start()
    result = run_cli("push", str(big), "--tag", "cli-drops", timeout=240)
    for w in watchers:
        w.join()
    assert "Traceback" not in result.stderr and "Task exception" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith(f"{manifest_id(big)}: ")
    for i, dev in devices.items():
        settled(dev)
        line = next(x for x in lines if x.startswith(dev.name + " "))
        if current(dev) == f"releases/{manifest_id(big)}":
            assert " installed " in line or line.split()[1] == "installed", line
        else:
            assert " failed " in line and "runs mnist v1.0." in line and i != 7, line
    assert result.returncode == (0 if all(current(d) == f"releases/{manifest_id(big)}" for d in devices.values())
                                 else 1)
