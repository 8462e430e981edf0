"""The Ray driver of one sweep, in its own process (`python -m studio.core.sweep.cluster.driver IN_FD OUT_FD`): Ray ends
a driver's process when it loses its cluster, so the sweep only sees this process go and stops cleanly.

It connects, refuses a cluster whose library versions differ from this machine's, puts each shipped path into the
object store once, submits the client's tasks (retried once when their node dies) and sends back each result."""
from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from studio.core.base.errors import StudioError, short
from studio.core.base.jobs import read_message, write_message
from studio.core.sweep.cluster import node

_stage = ray.remote(num_cpus=1, max_retries=1)(node.stage_on_node)
_candidate = ray.remote(num_cpus=1, max_retries=1)(node.candidate_on_node)
_versions = ray.remote(num_cpus=0, max_retries=0)(node.node_versions)


def connect(address: str, expected: dict[str, str]) -> dict[str, Any]:
    """Connect; the cluster's nodes and CPUs, or StudioError naming every library version that differs."""
    _init(address)
    alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    probes = [_versions.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
              for n in alive]
    nodes: list[dict[str, Any]] = [{"node": name, "versions": versions}
                                   for name, versions in ray.get(probes, timeout=120)]
    differ = [f"{n['node']}: {'; '.join(d)}" for n in nodes if (d := node.version_differences(expected, n["versions"]))]
    if differ:
        raise StudioError(f"the Ray cluster at {address} has other library versions than this machine (results would"
                          f" not equal a local run's); install the same versions on both: {' | '.join(differ)}")
    return {"address": address, "cpus": int(ray.cluster_resources().get("CPU", 1)), "nodes": nodes}


def _init(address: str) -> None:
    """ray.init, tried twice for a Ray Client address: its server starts a process per client, which can fail to
    start on a busy head and then starts on the next try."""
    tries = 2 if address.startswith("ray://") else 1
    for attempt in range(1, tries + 1):
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
            return
        except (ConnectionError, RuntimeError, ValueError) as exc:
            ray.shutdown()
            if attempt == tries:
                raise StudioError(f"cannot connect to the Ray cluster at {address}: {short(exc, 200)}") from None


class Driver:
    def __init__(self, out_fd: int):
        self._out, self._lock = out_fd, threading.Lock()
        self._pending: dict[Any, str] = {}  # ObjectRef -> request id
        self._refs: dict[str, Any] = {}  # request id -> ObjectRef
        self._shipped: dict[str, node.Shipped] = {}
        self._wake = threading.Condition(self._lock)
        self._closed = False

    def send(self, msg: tuple) -> None:
        with self._lock:
            write_message(self._out, msg)

    def serve(self, in_fd: int) -> None:
        """Read the client's requests until it closes the pipe."""
        while (msg := read_message(in_fd)) is not None:
            kind = msg[0]
            if kind == "ship":
                _, local, only = msg
                data = node.pack(local, only)
                self._shipped[local] = node.Shipped(node.digest(data), [ray.put(data)])
            elif kind == "cancel":
                with self._lock:
                    ref = self._refs.pop(msg[1], None)
                if ref is not None:
                    ray.cancel(ref)
            else:  # ("stage" | "candidate", request id, task, shipped paths)
                _, rid, task, paths = msg
                task = replace(task, shipped={p: self._shipped[p] for p in paths})
                ref = (_stage if kind == "stage" else _candidate).remote(task)
                with self._wake:
                    self._pending[ref], self._refs[rid] = rid, ref
                    self._wake.notify_all()
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def collect(self) -> None:
        """Send each task's result as it finishes, until the client is gone."""
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                refs = list(self._pending)
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.2)
            for ref in ready:
                with self._lock:
                    rid = self._pending.pop(ref)
                    self._refs.pop(rid, None)
                self.send(self._outcome(rid, ref))

    @staticmethod
    def _outcome(rid: str, ref) -> tuple:
        try:
            return "done", rid, ray.get(ref)
        except TaskCancelledError:
            return "lost", rid, "cancelled"
        except RayTaskError as exc:  # an exception the task did not turn into a StudioError
            return "lost", rid, f"its cluster task failed: {short(exc.cause or exc, 300)}"
        except RayError as exc:  # the worker or node died, twice (Ray retried it once)
            reason = str(exc).strip().split(". ")[0]
            return "lost", rid, f"its cluster task died on two nodes or workers (retried once): {reason}"


def main() -> None:
    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    opened = read_message(in_fd)
    driver = Driver(out_fd)
    try:
        driver.send(("opened", connect(opened[1], opened[2])))
    except StudioError as exc:
        driver.send(("refused", exc))
        return
    reader = threading.Thread(target=driver.serve, args=(in_fd,), daemon=True)
    reader.start()
    driver.collect()
    os._exit(0)  # skip Ray's shutdown: the cluster keeps running, this sweep's tasks were all collected


if __name__ == "__main__":
    main()
