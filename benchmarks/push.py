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
        import asyncssh

        from studio.core.bundle.bundle import ExportSource, build_bundle
        from studio.core.deploy import fleet, inventory, known_hosts
        from studio.core.deploy.transport import connect

        key = keygen(tmp / "client_key")
        authorized = tmp / "authorized_keys"
        authorized.write_text((tmp / "client_key.pub").read_text())
        servers = [Server(tmp / f"sshd{i}", authorized).start() for i in range(args.devices)]
        try:
            devices = []
            for i, s in enumerate(servers):
                d = inventory.Device(name=f"bench{i}", host="127.0.0.1", port=s.port, user=getpass.getuser(),
                                     key=str(key), dir=str(tmp / f"board{i}"), python=sys.executable)
                inventory.add(d)
                known_hosts.trust("127.0.0.1", s.port, asyncio.run(asyncssh.get_server_host_key("127.0.0.1", s.port)))
                devices.append(d)
            print(f"building a {args.megabytes} MB bundle ...", flush=True)
            build_bundle(ExportSource(big_onnx(tmp / "big.onnx", args.megabytes)), tmp / "big.bundle.zip",
                         name="big", version="1")
            path = tmp / "big.bundle.zip"
            size = path.stat().st_size

            # 1. raw upload: Studio's resumable SFTP upload against scp, same file, same server
            scp = ["scp", "-q", "-i", str(key), "-P", str(servers[0].port), "-o", "StrictHostKeyChecking=no",
                   "-o", f"UserKnownHostsFile={tmp / 'scp_known_hosts'}", str(path),
                   f"{getpass.getuser()}@127.0.0.1:{tmp / 'scp-copy.zip'}"]
            subprocess.run(scp, check=True)  # warm the page cache and the server
            t = time.monotonic()
            subprocess.run(scp, check=True)
            scp_s = time.monotonic() - t

            async def upload():
                tr = await connect(devices[0])
                t0 = time.monotonic()
                await tr.put(path, f"{devices[0].dir}/upload-test.zip", 0, lambda n: None)
                dt = time.monotonic() - t0
                await tr.close()
                return dt
            asyncio.run(upload())
            up_s = asyncio.run(upload())
            print(f"1. upload {size / 1e6:.1f} MB: scp {size / scp_s / 1e6:.0f} MB/s, Studio {size / up_s / 1e6:.0f}"
                  f" MB/s -> throughput ratio {scp_s / up_s:.2f} (goal >= 0.9)")
            t = time.monotonic()
            whole = fleet.push(path, [devices[0]], smoke=False).results[0]
            whole_s = time.monotonic() - t
            print(f"   whole push (verify, lock, upload, sha256 on the device, unpack, switch): {whole_s:.2f} s ="
                  f" {size / whole_s / 1e6:.0f} MB/s [{whole.status}]")

            # 2. re-push of what the device already runs
            again = fleet.push(path, [devices[0]]).results[0]
            print(f"2. re-push of the same bundle: {again.bytes_sent} bytes sent ({again.status}) (goal 0)")

            # 3. fleet scaling with a small bundle (about the sample model's size)
            n = len(devices) - 1
            for smoke in (True, False):
                small = tmp / f"small-{smoke}.bundle.zip"
                build_bundle(ExportSource(big_onnx(tmp / "small.onnx", 1)), small, name="small",
                             version="2" if smoke else "3")
                times = []
                for group in (devices[:1], devices[1:]):
                    cpu = os.times()
                    t = time.monotonic()
                    res = fleet.push(small, group, concurrency=len(group), smoke=smoke)
                    after = os.times()
                    times.append((time.monotonic() - t, after.user + after.system - cpu.user - cpu.system,
                                  res.counts()))
                (one_s, one_cpu, _), (many_s, many_cpu, counts) = times
                label = "with the on-device model check" if smoke else "without the model check"
                print(f"3. {label}: 1 device {one_s:.2f} s, {n} devices {many_s:.2f} s -> ratio"
                      f" {many_s / one_s:.2f} (goal <= 2) {counts}")
                print(f"   Studio's own CPU: {one_cpu:.2f} s for 1 device, {many_cpu / n:.2f} s per device for {n}")
            print(f"   The {n} simulated devices share this machine's {os.cpu_count()} cores with Studio: each one's"
                  " sshd session, agent and model check run here, so the wall-time ratio is bounded by device-side"
                  " CPU; on real boards that work runs on the boards.")
        finally:
            for s in servers:
                s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
