"""Fleet push on shaped links. Each simulated device lives in its own network namespace, reached over a veth pair
limited to --rate (default 20mbit, field-like) in both directions with tc tbf, and runs its own sshd inside that
namespace; the model check runs the bundle's runner with the device runtime, as on a board. One run prints:
one device's push time, 20 devices' push time and their ratio (goal <= 1.3), a 50-device run, Studio's own CPU
seconds per device, the same without the model check, scp of the same bundle over the same links, and the CPU
that the simulated devices used (a cpuacct group): with it, the least wall time this machine's cores allow.

Run as root, under the heavy-work lock:
    flock /tmp/studio-heavy.lock .venv/bin/python benchmarks/push.py [--quick] [--json] [--megabytes 4]"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.netns import DeviceCpu, Link, Links, unavailable
from tests.deploy.conftest import big_onnx
from tests.deploy.sshd import Server, available, keygen


@dataclass(frozen=True)
class Plan:
    fleet: int  # the "20 devices" run
    big: int  # the "50 devices" run
    megabytes: int
    rate: str


@dataclass
class Rig:
    """The shaped devices, their sshd and inventory entries, and the client key."""
    tmp: Path
    key: Path
    links: list[Link]
    servers: list[Server]
    devices: list
    cpu: DeviceCpu


@dataclass(frozen=True)
class Timed:
    devices: int
    seconds: float
    cpu_s: float  # this process's user + system CPU
    busy: float  # fraction of the whole machine's CPU time that was busy meanwhile (all users)
    counts: dict
    device_s: tuple[float, ...] = ()  # each device's own push time, as the push reports it
    device_cpu_s: float | None = None  # CPU of all simulated devices' processes (sshd, agent, model check)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 and 10 devices instead of 20 and 50")
    parser.add_argument("--megabytes", type=int, default=4, help="bundle size (random weights, incompressible)")
    parser.add_argument("--rate", default="20mbit", help="link rate each way, as tc writes it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = available() or unavailable()
    if reason:
        print(f"benchmarks/push.py cannot run here: {reason}. Nothing was measured.", file=sys.stderr)
        return 1
    plan = Plan(5 if args.quick else 20, 10 if args.quick else 50, args.megabytes, args.rate)
    try:
        report = _run(plan)
    except KeyboardInterrupt:
        print("interrupted; the namespaces, links and sshd it made were removed", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=2) if args.json else _text(report, plan))
    return 0


def _run(plan: Plan) -> dict:
    with tempfile.TemporaryDirectory() as tmp, DeviceCpu() as cpu, Links(plan.rate) as links:
        rig = _rig(Path(tmp), links, cpu, plan.big)
        try:
            return _measure(rig, plan)
        finally:
            for s in rig.servers:
                s.stop()


def _rig(tmp: Path, links: Links, cpu: DeviceCpu, n: int) -> Rig:
    import asyncssh

    from studio.core.deploy import inventory, known_hosts

    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    key = keygen(tmp / "client_key")
    authorized = tmp / "authorized_keys"
    authorized.write_text((tmp / "client_key.pub").read_text())
    rig = Rig(tmp, key, [], [], [], cpu)
    for i in range(n):
        link = links.add()
        rig.links.append(link)
        rig.servers.append(Server(tmp / f"sshd{i}", authorized, netns=link.netns, address=link.address).start())
        cpu.adopt(rig.servers[-1].proc.pid)  # type: ignore[union-attr]
        d = inventory.Device(name=f"bench{i}", host=link.address, port=22, user=getpass.getuser(), key=str(key),
                             dir=str(tmp / f"board{i}"), python=sys.executable)
        inventory.add(d)
        known_hosts.trust(link.address, 22, asyncio.run(asyncssh.get_server_host_key(link.address, 22)))
        rig.devices.append(d)
    return rig


def _bundle(rig: Rig, version: str, megabytes: int) -> Path:
    from studio.core.bundle.bundle import ExportSource, build_bundle

    model = rig.tmp / f"big{megabytes}.onnx"
    if not model.exists():
        big_onnx(model, megabytes)
    path = rig.tmp / f"fleet-{version}.bundle.zip"
    build_bundle(ExportSource(model), path, name="fleet", version=version)
    return path


def _busy() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _timed(rig: Rig, devices: list, run) -> Timed:
    """Run `run` (it returns the counts and each device's own time) and what it cost: wall, CPU here and there."""
    usage, busy, device, start = resource.getrusage(resource.RUSAGE_SELF), _busy(), rig.cpu.seconds(), time.monotonic()
    counts, device_s = run()
    seconds, after, busy_after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_SELF), _busy()
    device_after = rig.cpu.seconds()
    return Timed(devices=len(devices), seconds=seconds,
                 cpu_s=after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime,
                 busy=(busy_after[0] - busy[0]) / max(1, busy_after[1] - busy[1]), counts=counts, device_s=device_s,
                 device_cpu_s=None if device is None or device_after is None else device_after - device)


def _push(rig: Rig, bundle: Path, devices: list, smoke: bool) -> Timed:
    from studio.core.deploy import fleet

    def run():
        result = fleet.push(bundle, devices, concurrency=len(devices), smoke=smoke)
        counts = result.counts()
        failed = [r for r in result.results if not r.ok]
        if failed:
            raise SystemExit(f"benchmark push failed on {failed[0].device}: {failed[0].message}")
        return counts, tuple(round(r.seconds, 2) for r in result.results)
    return _timed(rig, devices, run)


def _scp(rig: Rig, bundle: Path, devices: list) -> Timed:
    def run():
        procs = [subprocess.Popen(["scp", "-q", "-i", str(rig.key), "-o", "StrictHostKeyChecking=no",
                                   "-o", f"UserKnownHostsFile={rig.tmp / 'scp_known_hosts'}", str(bundle),
                                   f"{d.user}@{d.host}:{d.dir}/scp-copy.zip"]) for d in devices]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"scp failed with exit codes {codes}")
        return {"copied": len(devices)}, ()
    return _timed(rig, devices, run)


def _measure(rig: Rig, plan: Plan) -> dict:
    devices = rig.devices
    warm = _bundle(rig, "warmup", 1)
    _push(rig, warm, devices, smoke=False)  # agents uploaded, one release everywhere: every device starts alike
    runs = {}
    for label, group, smoke in (("one", devices[:1], True), ("fleet", devices[:plan.fleet], True),
                                ("big", devices, True), ("one_nocheck", devices[:1], False),
                                ("fleet_nocheck", devices[:plan.fleet], False)):
        runs[label] = _push(rig, _bundle(rig, label.replace("_", "-"), plan.megabytes), group, smoke)
    scp_bundle = _bundle(rig, "scp", plan.megabytes)
    _scp(rig, scp_bundle, devices[:1])  # the scp known_hosts file is written once, outside the timing
    runs["scp_one"] = _scp(rig, scp_bundle, devices[:1])
    runs["scp_fleet"] = _scp(rig, scp_bundle, devices[:plan.fleet])
    return _report(runs, plan, scp_bundle.stat().st_size)


def _report(runs: dict[str, Timed], plan: Plan, size: int) -> dict:
    one, fleet, big = runs["one"], runs["fleet"], runs["big"]
    return {
        "devices": [1, plan.fleet, plan.big], "bundle_bytes": size, "rate": plan.rate, "cores": os.cpu_count(),
        "one_device_s": round(one.seconds, 2), "fleet20_s": round(fleet.seconds, 2),
        "fleet20_over_one": round(fleet.seconds / one.seconds, 2), "fleet50_s": round(big.seconds, 2),
        "studio_cpu_s_per_device": round(fleet.cpu_s / plan.fleet, 3),
        "studio_cpu_s_per_device_fleet50": round(big.cpu_s / plan.big, 3),
        "scp_one_device_s": round(runs["scp_one"].seconds, 2), "scp_fleet20_s": round(runs["scp_fleet"].seconds, 2),
        "scp_fleet20_over_one": round(runs["scp_fleet"].seconds / runs["scp_one"].seconds, 2),
        "nocheck_one_device_s": round(runs["one_nocheck"].seconds, 2),
        "nocheck_fleet20_s": round(runs["fleet_nocheck"].seconds, 2),
        "nocheck_fleet20_over_one": round(runs["fleet_nocheck"].seconds / runs["one_nocheck"].seconds, 2),
        "machine_busy": {k: round(v.busy, 2) for k, v in runs.items()},
        "device_cpu_s_per_device": {k: None if v.device_cpu_s is None else round(v.device_cpu_s / v.devices, 3)
                                    for k, v in runs.items()},
        "fleet20_cpu_floor_s": _floor(fleet), "nocheck_fleet20_cpu_floor_s": _floor(runs["fleet_nocheck"]),
        "fleet50_cpu_floor_s": _floor(big),
        "fleet20_device_s_mean_max": [round(sum(fleet.device_s) / len(fleet.device_s), 2), max(fleet.device_s)],
        "runs": {k: asdict(v) for k, v in runs.items()},
    }


def _floor(run: Timed) -> float | None:
    """The least wall time the run's CPU work (Studio's and the simulated devices') can take on this machine."""
    if run.device_cpu_s is None:
        return None
    return round((run.cpu_s + run.device_cpu_s) / (os.cpu_count() or 1), 2)


def _verdict(r: dict) -> str:
    """What the 20/1 ratio measured in this run: this machine's CPU when the run took little more than its floor."""
    where = (f"each simulated device's sshd, agent, sha256, unpack and model check (a Python with numpy and the"
             f" runtime) run on this machine's {r['cores']} cores beside Studio")
    floor, wall = r["fleet20_cpu_floor_s"], r["fleet20_s"]
    if floor is None:
        return f"The links are separate, but {where}; their CPU could not be counted here (no cpuacct group)."
    if floor >= 0.8 * wall:
        return (f"The links are separate, but {where}: the run took {wall:.2f} s against a CPU floor of {floor} s,"
                " so the ratio measures this machine's CPU, not Studio or the links.")
    return (f"The run took {wall:.2f} s against a CPU floor of {floor} s: it was bound by the links and Studio's"
            " concurrency, not by this machine's CPU.")


def _text(r: dict, plan: Plan) -> str:
    n, m = plan.fleet, plan.big
    link = f"{r['rate']} each way (tc tbf), one network namespace and sshd per device"
    return "\n".join([
        f"links: {link}; bundle {r['bundle_bytes'] / 1e6:.1f} MB; this machine has {r['cores']} cores",
        f"with the model check:    1 device {r['one_device_s']:.2f} s, {n} devices {r['fleet20_s']:.2f} s -> ratio"
        f" {r['fleet20_over_one']:.2f} (goal <= 1.3); {m} devices {r['fleet50_s']:.2f} s",
        f"Studio's own CPU:        {r['studio_cpu_s_per_device']:.3f} s per device ({n} devices),"
        f" {r['studio_cpu_s_per_device_fleet50']:.3f} s per device ({m} devices)",
        f"without the model check: 1 device {r['nocheck_one_device_s']:.2f} s, {n} devices"
        f" {r['nocheck_fleet20_s']:.2f} s -> ratio {r['nocheck_fleet20_over_one']:.2f}",
        f"scp, same links:         1 device {r['scp_one_device_s']:.2f} s, {n} devices {r['scp_fleet20_s']:.2f} s"
        f" -> ratio {r['scp_fleet20_over_one']:.2f}",
        f"each of the {n} devices' own push time: mean {r['fleet20_device_s_mean_max'][0]:.2f} s, max"
        f" {r['fleet20_device_s_mean_max'][1]:.2f} s",
        "machine CPU busy (all users): " + ", ".join(f"{k} {v:.0%}" for k, v in r["machine_busy"].items()),
        "simulated devices' own CPU per device (sshd, agent, model check): " + ", ".join(
            f"{k} {v:.2f} s" for k, v in r["device_cpu_s_per_device"].items() if v is not None),
        f"CPU floor (Studio's and the devices' CPU seconds / {r['cores']} cores): {n} devices"
        f" {r['fleet20_cpu_floor_s']} s with the check, {r['nocheck_fleet20_cpu_floor_s']} s without; {m} devices"
        f" {r['fleet50_cpu_floor_s']} s",
        _verdict(r),
    ])


if __name__ == "__main__":
    sys.exit(main())
