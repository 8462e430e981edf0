"""Push measurements over loopback against real sshd devices, in one run:
  1. upload throughput of a 50 MB bundle as a ratio to `scp` of the same file (goal >= 0.9)
  2. bytes sent by a re-push of the same bundle (goal 0)
  3. wall time of a 20-device push divided by a single-device push (goal <= 2)

Run as root (sshd): .venv/bin/python benchmarks/push.py [--devices 20] [--megabytes 50]"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.deploy.conftest import big_onnx
from tests.deploy.sshd import Server, available, keygen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    reason = available()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
        key = keygen(tmp / "client_key")
        authorized = tmp / "authorized_keys"
        authorized.write_text((tmp / "client_key.pub").read_text())
        servers = [Server(tmp / f"sshd{i}", authorized).start() for i in range(args.devices)]
        try:
            devices = _devices(tmp, servers, key)
            print(f"building a {args.megabytes} MB bundle ...", flush=True)
            path = _bundle(tmp, "big", "1", args.megabytes)
            _upload_ratio(tmp, path, devices[0], servers[0], key)
            _repush(path, devices[0])
            _fleet_scaling(tmp, devices)
        finally:
            for s in servers:
                s.stop()
    return 0


def _devices(tmp: Path, servers: list[Server], key: Path) -> list:
    """One inventory device per sshd, its host key trusted as `studio devices trust` would."""
    import asyncssh

    from studio.core.deploy import inventory, known_hosts

    devices = []
    for i, s in enumerate(servers):
        d = inventory.Device(name=f"bench{i}", host="127.0.0.1", port=s.port, user=getpass.getuser(),
                             key=str(key), dir=str(tmp / f"board{i}"), python=sys.executable)
        inventory.add(d)
        known_hosts.trust("127.0.0.1", s.port, asyncio.run(asyncssh.get_server_host_key("127.0.0.1", s.port)))
        devices.append(d)
    return devices


def _bundle(tmp: Path, name: str, version: str, megabytes: int) -> Path:
    from studio.core.bundle.bundle import ExportSource, build_bundle

    path = tmp / f"{name}-{version}.bundle.zip"
    build_bundle(ExportSource(big_onnx(tmp / f"{name}.onnx", megabytes)), path, name=name, version=version)
    return path


def _upload_ratio(tmp: Path, path: Path, device, server: Server, key: Path) -> None:
    """1. raw upload: Studio's resumable SFTP upload against scp, same file, same server; then a whole push."""
    from studio.core.deploy import fleet
    from studio.core.deploy.transport import connect

    size = path.stat().st_size
    scp = ["scp", "-q", "-i", str(key), "-P", str(server.port), "-o", "StrictHostKeyChecking=no",
           "-o", f"UserKnownHostsFile={tmp / 'scp_known_hosts'}", str(path),
           f"{getpass.getuser()}@127.0.0.1:{tmp / 'scp-copy.zip'}"]
    subprocess.run(scp, check=True)  # warm the page cache and the server
    t = time.monotonic()
    subprocess.run(scp, check=True)
    scp_s = time.monotonic() - t

    async def upload():
        tr = await connect(device)
        t0 = time.monotonic()
        await tr.put(path, f"{device.dir}/upload-test.zip", 0, lambda n: None)
        dt = time.monotonic() - t0
        await tr.close()
        return dt
    asyncio.run(upload())
    up_s = asyncio.run(upload())
    print(f"1. upload {size / 1e6:.1f} MB: scp {size / scp_s / 1e6:.0f} MB/s, Studio {size / up_s / 1e6:.0f}"
          f" MB/s -> throughput ratio {scp_s / up_s:.2f} (goal >= 0.9)")
    t = time.monotonic()
    whole = fleet.push(path, [device], smoke=False).results[0]
    whole_s = time.monotonic() - t
    print(f"   whole push (verify, lock, upload, sha256 on the device, unpack, switch): {whole_s:.2f} s ="
          f" {size / whole_s / 1e6:.0f} MB/s [{whole.status}]")


def _repush(path: Path, device) -> None:
    """2. re-push of what the device already runs."""
    from studio.core.deploy import fleet

    again = fleet.push(path, [device]).results[0]
    print(f"2. re-push of the same bundle: {again.bytes_sent} bytes sent ({again.status}) (goal 0)")


def _fleet_scaling(tmp: Path, devices: list) -> None:
    """3. fleet scaling with a small bundle (about the sample model's size), with and without the model check."""
    from studio.core.deploy import fleet

    n = len(devices) - 1
    for smoke in (True, False):
        small = _bundle(tmp, "small", "2" if smoke else "3", 1)
        times = []
        for group in (devices[:1], devices[1:]):
            cpu = os.times()
            t = time.monotonic()
            res = fleet.push(small, group, concurrency=len(group), smoke=smoke)
            after = os.times()
            times.append((time.monotonic() - t, after.user + after.system - cpu.user - cpu.system, res.counts()))
        (one_s, one_cpu, _), (many_s, many_cpu, counts) = times
        label = "with the on-device model check" if smoke else "without the model check"
        print(f"3. {label}: 1 device {one_s:.2f} s, {n} devices {many_s:.2f} s -> ratio"
              f" {many_s / one_s:.2f} (goal <= 2) {counts}")
        print(f"   Studio's own CPU: {one_cpu:.2f} s for 1 device, {many_cpu / n:.2f} s per device for {n}")
    print(f"   The {n} simulated devices share this machine's {os.cpu_count()} cores with Studio: each one's"
          " sshd session, agent and model check run here, so the wall-time ratio is bounded by device-side"
          " CPU; on real boards that work runs on the boards.")


if __name__ == "__main__":
    sys.exit(main())
