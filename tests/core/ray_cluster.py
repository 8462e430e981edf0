"""A real Ray cluster on loopback for the cluster sweep tests: a head and worker nodes, each `ray start --block` in its
own process group, so that a test can kill one node (or the head) and the finalizer ends exactly what it started."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[2]
# Notice a dead node within about two seconds (the defaults take about half a minute).
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
               "RAY_health_check_initial_delay_ms": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """Each node has its own TMPDIR (`tmp(i)`), so a test sees what the sweep unpacked on which node."""

    def __init__(self, temp: Path):
        self.temp = temp  # short: Ray's socket paths under it must stay below 108 characters
        self._nodes: list[subprocess.Popen] = []
        # the nodes' workers import this checkout's studio, as a real cluster's nodes import the installed one
        self._env = dict(os.environ, **FAST_HEALTH, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
        self.port, self.address, self.client_address = 0, "", ""

    def tmp(self, node: int) -> Path:
        return self.temp / f"node{node}"

    def tmp_of(self, proc: subprocess.Popen) -> Path:
        return self.tmp(self._nodes.index(proc))

    def _start(self, *args: str) -> subprocess.Popen:
        i = len(self._nodes)
        shutil.rmtree(self.tmp(i), ignore_errors=True)
        self.tmp(i).mkdir()
        with open(self.temp / f"node{i}.log", "ab") as out:
            proc = subprocess.Popen([RAY, "start", *args, "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                     "--object-store-memory=80000000", "--disable-usage-stats", "--block"],
                                    stdout=out, stderr=subprocess.STDOUT, env=dict(self._env, TMPDIR=str(self.tmp(i))),
                                    start_new_session=True)
        self._nodes.append(proc)
        return proc

    def start_head(self) -> None:
        """A new head (on a new port after a stop(), as a re-created cluster would be)."""
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        client_port = _free_port()
        self.client_address = f"ray://127.0.0.1:{client_port}"  # the Ray Client server, for drivers off the cluster
        self._start("--head", f"--port={self.port}", "--include-dashboard=false",
                    f"--ray-client-server-port={client_port}", f"--temp-dir={self.temp / 'ray'}")
        self.wait_for_nodes(1)

    def add_worker(self) -> subprocess.Popen:
        proc = self._start(f"--address={self.address}")
        self.wait_for_nodes(sum(p.poll() is None for p in self._nodes))
        return proc

    def alive_nodes(self) -> int:
        """Alive nodes, as the head counts them (asked from a separate process: a driver here would outlive it)."""
        probe = subprocess.run([sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], "
                                "log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))", self.address],
                               capture_output=True, text=True, env=self._env, timeout=120)
        return int(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else 0

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while self.alive_nodes() < count:
            if time.monotonic() > end:
                raise RuntimeError(f"the Ray cluster did not reach {count} nodes; logs in {self.temp}")
            time.sleep(0.5)

    def client_server_logs(self, tail: int = 3000) -> str:
        """The end of each Ray Client server log on the head (why a ray:// connection was refused)."""
        logs = sorted((self.temp / "ray" / "session_latest" / "logs").glob("ray_client_server*"))
        return "\n".join(f"{log.name}: {log.read_text(errors='replace')[-tail:]}" for log in logs) or "no client logs"

    def kill(self, proc: subprocess.Popen) -> None:
        """End one node at once, as a machine that loses power does (its raylet, store and workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    @property
    def head(self) -> subprocess.Popen:
        return self._nodes[0]

    def stop(self) -> None:
        for proc in reversed(self._nodes):
            self.kill(proc)
        self._nodes.clear()
        shutil.rmtree(self.temp / "ray", ignore_errors=True)
