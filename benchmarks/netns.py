"""Shaped links for the fleet benchmark: one network namespace per simulated device, reached over a veth pair that
tc tbf limits in both directions; everything made here is removed again, also after an error or Ctrl-C."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Link:
    netns: str
    host_if: str
    address: str  # the device's address inside its namespace


def _ip(*args: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.run([*prefix, *args], capture_output=True, text=True)
    if proc.returncode:
        raise OSError(f"`{' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")


class Links:
    """A context manager that makes shaped links on request and removes every one of them on exit."""

    def __init__(self, rate: str):
        self.rate = rate
        self.tag = os.getpid() % 100000
        self.net = 100 + self.tag % 100  # 10.NET.I.0/24 for device I
        self.links: list[Link] = []

    def add(self) -> Link:
        i = len(self.links)
        link = Link(f"studio-bench-{self.tag}-{i}", f"sb{self.tag}h{i}", f"10.{self.net}.{i}.2")
        self.links.append(link)  # before it exists: a half-made link is removed too
        dev_if = f"sb{self.tag}d{i}"
        _ip("ip", "netns", "add", link.netns)
        _ip("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", dev_if)
        _ip("ip", "link", "set", dev_if, "netns", link.netns)
        _ip("ip", "addr", "add", f"10.{self.net}.{i}.1/24", "dev", link.host_if)
        _ip("ip", "link", "set", link.host_if, "up")
        for args in (("ip", "addr", "add", f"{link.address}/24", "dev", dev_if), ("ip", "link", "set", dev_if, "up"),
                     ("ip", "link", "set", "lo", "up")):
            _ip(*args, netns=link.netns)
        self._shape(link.host_if, None)  # uploads: this machine towards the device
        self._shape(dev_if, link.netns)  # answers: the device towards this machine
        return link

    def _shape(self, interface: str, netns: str | None) -> None:
        _ip("tc", "qdisc", "add", "dev", interface, "root", "tbf", "rate", self.rate, "burst", "64kbit",
            "latency", "400ms", netns=netns)

    def __enter__(self) -> Links:
        signal.signal(signal.SIGTERM, _exit_on_term)
        return self

    def __exit__(self, *exc) -> None:
        for link in self.links:
            pids = subprocess.run(["ip", "netns", "pids", link.netns], capture_output=True, text=True).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)  # only processes inside a namespace made here
            subprocess.run(["ip", "netns", "del", link.netns], capture_output=True)
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True)  # gone with its peer, usually


class DeviceCpu:
    """CPU time of the simulated devices' processes (each sshd and what it starts: sessions, agent, model check),
    counted by a cgroup-v1 cpuacct group made here; `seconds()` is None where that hierarchy is not available."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.group: Path | None = self.ROOT / f"studio-bench-{os.getpid()}"

    def __enter__(self) -> DeviceCpu:
        try:
            self.group.mkdir()  # type: ignore[union-attr]
        except OSError:
            self.group = None
        return self

    def adopt(self, pid: int) -> None:
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(f"{pid}\n")

    def seconds(self) -> float | None:
        return int((self.group / "cpuacct.usage").read_text()) / 1e9 if self.group is not None else None

    def __exit__(self, *exc) -> None:
        if self.group is None:
            return
        for pid in (self.group / "cgroup.procs").read_text().split():  # any left: back to the parent group
            with contextlib.suppress(OSError):
                (self.ROOT / "cgroup.procs").write_text(f"{pid}\n")
        with contextlib.suppress(OSError):
            self.group.rmdir()


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(128 + signum)  # so that `finally` and __exit__ clean up after `kill`


def unavailable() -> str | None:
    """None when namespaces and tc tbf can be used here, else why not."""
    if os.geteuid() != 0:
        return "it needs root (network namespaces, tc, and an sshd per device)"
    try:
        with Links("20mbit") as probe:
            probe.add()
    except (OSError, FileNotFoundError) as exc:
        return f"network namespaces or tc tbf are not allowed here ({exc})"
    return None
