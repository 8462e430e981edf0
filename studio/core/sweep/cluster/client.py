"""The sweep's side of a Ray cluster (no ray import here): it starts the driver process, ships the model, data and
each float stage once, and turns each stage or candidate into a task whose result it waits for on the caller's
thread. The driver's process ending means the cluster connection is lost: every waiting call raises ExecutorLost."""
from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from studio.core.base import atomic
from studio.core.base.errors import Cancelled, JobCrashed, StudioError
from studio.core.base.jobs import WORKER_ENV, read_message, write_message
from studio.core.base.progress import CancelToken
from studio.core.base.versions import library_versions
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.measure.latency import LatencyOptions
from studio.core.optimize.stage import FloatStage, StageRequest
from studio.core.sweep.cluster.node import CandidateTask, NodeCandidate, StageTask, unpack
from studio.core.sweep.executor import Built, ClusterOptions, ExecutorLost, LatencyOn
from studio.core.sweep.jobs import CandidateJob

_CONNECT_S = 180  # connecting and probing every node's versions
_PROBE_S = 10  # for the head's port to accept a connection


def _check_listening(options: ClusterOptions) -> None:
    """A quick, clear refusal when nothing listens at the address (Ray itself retries for minutes)."""
    where = options.host_port
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=_PROBE_S):
            pass
    except OSError as exc:
        flag = "ray-client-server-port" if options.address.strip().startswith("ray://") else "port"
        raise StudioError(f"cannot connect to the Ray cluster at {options.address}: nothing answers there"
                          f" ({exc.strerror or exc}); start the head with `ray start --head --{flag}={where[1]}`"
                          " or check the address") from None


class _Call:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: tuple | None = None


class ClusterExecutor:
    """Candidates and float stages as Ray tasks; latency stays on this machine unless options.latency_on says."""

    def __init__(self, options: ClusterOptions, log: Path, *, timing: LatencyOptions = LatencyOptions()):
        self.options, self._timing, self._log = options, timing, log
        self._versions = library_versions()
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}
        self._ids = itertools.count()
        self._shipped: set[str] = set()
        self._source: tuple[str, ...] = ()
        self._lost: str | None = None
        _check_listening(options)
        self._proc, self._in, self._out = self._start()
        self.info = self._open()
        self.slots = max(1, self.info["cpus"])
        threading.Thread(target=self._read, daemon=True, name="cluster-replies").start()

    def _start(self) -> tuple[subprocess.Popen, int, int]:
        to_driver, from_client = os.pipe()
        from_driver, to_client = os.pipe()
        env = dict(os.environ, **WORKER_ENV, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._log.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "studio.core.sweep.cluster.driver", str(to_driver),
                                     str(to_client)], pass_fds=(to_driver, to_client), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env=env)
        os.close(to_driver)
        os.close(to_client)
        return proc, from_client, from_driver

    def _open(self) -> dict[str, Any]:
        write_message(self._in, ("open", self.options.address, self._versions))
        reply = _read_within(self._out, _CONNECT_S)
        if reply is None:
            self.close()
            raise StudioError(f"cannot connect to the Ray cluster at {self.options.address} (no answer within"
                              f" {_CONNECT_S} s; details in {self._log})")
        if reply[0] == "refused":
            self.close()
            raise reply[1]
        return reply[1]

    def _read(self) -> None:
        while (msg := read_message(self._out)) is not None:
            with self._lock:
                call = self._calls.pop(msg[1], None)
            if call is not None:
                call.reply = msg
                call.done.set()
        self._proc.wait()
        with self._lock:
            self._lost = (f"lost the connection to the Ray cluster at {self.options.address} (details in"
                          f" {self._log}); finished candidates are kept: run the same sweep again to resume")
            calls, self._calls = list(self._calls.values()), {}
        for call in calls:
            call.done.set()

    def _ship(self, path: str, only: tuple[str, ...] = ()) -> None:
        """Put a path of this machine into the cluster's object store, once per sweep (before any task names it)."""
        with self._lock:
            if path not in self._shipped:
                self._write(("ship", path, only))
                self._shipped.add(path)

    def _write(self, msg: tuple) -> None:
        """Send one request to the driver (the caller holds the lock)."""
        if self._lost:
            raise ExecutorLost(self._lost)
        try:
            write_message(self._in, msg)
        except OSError:
            raise ExecutorLost(f"lost the connection to the Ray cluster at {self.options.address} (details in"
                               f" {self._log})") from None

    def _submit(self, kind: str, task: Any, paths: tuple[str, ...], cancel: CancelToken) -> Any:
        rid, call = str(next(self._ids)), _Call()
        with self._lock:
            self._calls[rid] = call
            self._write((kind, rid, task, paths))
        while not call.done.wait(0.1):
            if cancel.cancelled:
                with self._lock:
                    self._write(("cancel", rid))
                raise Cancelled()
        if call.reply is None:
            raise ExecutorLost(self._lost or "the Ray cluster's driver stopped")
        if call.reply[0] == "lost":
            raise JobCrashed(call.reply[2])
        return call.reply[2]

    def stage(self, request: StageRequest, cancel: CancelToken) -> FloatStage:
        paths = (request.model, *_arch_file(request.arch))
        for p in paths:
            self._ship(p)
        got, files, _node = self._submit("stage", StageTask(request, {}, self._versions), paths, cancel)
        if isinstance(got, StudioError):
            raise got
        unpack(files, request.work)
        return got

    def candidate(self, job: CandidateJob, stage_dir: Path, cancel: CancelToken, what: str) -> Built:
        self._ship(str(stage_dir))
        paths = (str(stage_dir), job.data_path, *self._source)
        remaining = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
        timed = self._timing if self.options.latency_on == LatencyOn.CLUSTER else None
        task = CandidateTask(job, {}, self._versions, remaining, timed, what)
        got: NodeCandidate = self._submit("candidate", task, tuple(dict.fromkeys(paths)), cancel)
        if isinstance(got.outcome, StudioError):
            raise got.outcome
        atomic.write_bytes(job.out, got.model)
        return Built(got.outcome, got.node, got.latency)

    def share(self, model: str, files: list[str], data_path: str) -> None:
        """Ship the sweep's model (itself, or its folder's files when it has several) and its evaluation data."""
        if os.path.isdir(model) or len(files) <= 1:
            self._source = (model,)
        else:
            root = os.path.dirname(os.path.abspath(model))
            self._source = (root,)
            self._ship(root, tuple(f for f in files if os.path.abspath(f).startswith(root + os.sep)))
        self._ship(self._source[0])
        self._ship(data_path)

    def record(self) -> dict[str, Any]:
        return {"address": self.options.address, "latency_on": str(self.options.latency_on),
                "nodes": self.info["nodes"]}

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._in)  # the driver's end of the sweep: it exits, and Ray drops this sweep's tasks
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _arch_file(arch: ArchSpec | None) -> tuple[str, ...]:
    if arch is None or not arch.user_code:
        return ()
    where = arch.name.rpartition(":")[0]
    return (where,) if os.path.isfile(where) else ()


def _read_within(fd: int, seconds: float):
    import select

    ready, _, _ = select.select([fd], [], [], seconds)
    return read_message(fd) if ready else None
