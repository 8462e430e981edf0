"""Run heavy framework work in a worker process, so a crash in a converter never takes the caller down.

`run_job(fn, *args, report=..., cancel=..., timeout=..., kind=...)` calls `fn(*args, report=child_report, **kwargs)`
in `python -m studio.core.base.worker`: a fresh one per job (kind=None), or the warm worker of that kind (see
studio.core.base.pool). Progress comes back as it happens; the return value or a StudioError comes back at the end;
a segfault, an out-of-memory kill or a hang becomes a JobCrashed with a plain message; cancel kills the worker. The
worker is a plain subprocess (not multiprocessing), so the caller's __main__ is never re-run.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.base.errors import Cancelled, JobCrashed, StudioError, unexpected
from studio.core.base.handoff import Handoff
from studio.core.base.progress import CancelToken, Report, ignore

if TYPE_CHECKING:
    from studio.core.base.pool import WorkerKind

# Quiet the frameworks' C++ logging and keep TensorFlow's float sums in a repeatable order.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "GRPC_VERBOSITY": "ERROR",
              "PYTHONWARNINGS": "ignore"}


def read_message(fd: int):
    body = read_frame(fd)
    return None if body is None else pickle.loads(body)


def read_frame(fd: int) -> bytes | None:
    """One length-prefixed frame (write_frame's), or None when the pipe ends first."""
    header = _read_exact(fd, 4)
    return None if header is None else _read_exact(fd, struct.unpack("!I", header)[0])


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, obj) -> None:
    write_frame(fd, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def write_frame(fd: int, body: bytes) -> None:
    data = memoryview(struct.pack("!I", len(body)) + body)
    while data:
        data = data[os.write(fd, data):]


@dataclass(eq=False)
class Worker:
    """One worker process: its job pipe (stdin), its result pipe and the log its output goes to."""
    proc: subprocess.Popen
    results: int  # read end of the pipe the worker writes progress and outcomes to
    log_path: str
    keep_log: bool = False  # a message named the log: it stays when the worker goes
    identity: Any = None  # the caller's environment when it started (a warm worker serves only that)
    idle_since: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def _worker_env() -> dict[str, str]:
    env = dict(os.environ, **WORKER_ENV)
    # the worker must import whatever the caller can (fn is pickled by reference to its module)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def spawn(serve_idle: float | None = None) -> Worker:
    """Start a worker: for one job (serve_idle None) or serving jobs until it has been idle that many seconds."""
    log_fd, log_path = tempfile.mkstemp(prefix="studio-job-", suffix=".log")
    read_fd, write_fd = os.pipe()
    args = [sys.executable, "-m", "studio.core.base.worker", str(write_fd)]
    if serve_idle is not None:
        args += ["--serve", f"{serve_idle:g}"]
    try:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, pass_fds=(write_fd,),
                                env=_worker_env())
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
        os.close(log_fd)
    return Worker(proc, read_fd, log_path)


def job_payload(fn, args: tuple, kwargs: dict, handoff: Handoff | None = None) -> bytes:
    """The pickled job; with a handoff, its large arrays go in files the worker maps (see handoff)."""
    if handoff is not None:
        return handoff.dumps((fn, args, kwargs))
    return pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)


def send(worker: Worker, payload: bytes, *, last: bool = False) -> bool:
    """Hand one job to the worker (closing its job pipe after it when `last`); False when the worker is already
    gone (await_outcome then says how)."""
    assert worker.proc.stdin is not None  # stdin=PIPE
    try:
        write_frame(worker.proc.stdin.fileno(), payload)
        return True
    except (BrokenPipeError, ValueError, OSError):
        return False
    finally:
        if last:
            with contextlib.suppress(OSError):
                worker.proc.stdin.close()


def await_outcome(worker: Worker, *, report: Report = ignore, cancel: CancelToken | None = None,
                  timeout: float | None = None, what: str = "worker") -> tuple:
    """Forward the job's progress until its outcome ("ok" | "error" | "failed", value) arrives. A cancel or a
    timeout stops the worker; a worker that dies first is a JobCrashed naming its log."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.cancelled:
            stop(worker)
            raise Cancelled()
        if deadline is not None and time.monotonic() > deadline:
            stop(worker)
            raise JobCrashed(f"{what} did not finish within {timeout:.0f} s and was stopped")
        ready, _, _ = select.select([worker.results], [], [], 0.05)
        if not ready:
            continue
        msg = read_message(worker.results)
        if msg is None:  # pipe closed without a result: the worker died
            worker.proc.wait()
            worker.keep_log = True
            raise JobCrashed(f"{what} {_describe_exit(worker.proc.returncode)}; details in {worker.log_path}")
        if msg[0] == "progress":
            report(msg[1], msg[2])
        else:
            worker.keep_log = worker.keep_log or msg[0] == "failed"  # its message names the log
            return msg


def unwrap(outcome: tuple, worker: Worker, what: str):
    """The job's return value, or its error raised as the caller's."""
    if outcome[0] == "failed":  # an exception no check foresaw: the log keeps its traceback
        raise StudioError(unexpected(outcome[1], worker.log_path, what))
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            return "was killed (SIGKILL; most often the machine ran out of memory)"
        return f"crashed ({name})"
    return f"exited unexpectedly with code {code}"


def stop(worker: Worker, grace: float = 3) -> None:
    """End the worker now (terminate, then kill) and release its pipes."""
    if worker.alive():
        worker.proc.terminate()
        try:
            worker.proc.wait(grace)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
    release(worker)


def release(worker: Worker) -> None:
    """Close the caller's ends of the worker's pipes and drop its log unless a message named it."""
    for close in (lambda: os.close(worker.results), lambda: worker.proc.stdin and worker.proc.stdin.close()):
        with contextlib.suppress(OSError, ValueError):
            close()
    worker.results = -1
    if not worker.keep_log:
        Path(worker.log_path).unlink(missing_ok=True)


def _finish_fresh(worker: Worker) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.proc.wait(10)
    stop(worker)


def warm_enabled() -> bool:
    return os.environ.get("STUDIO_WARM_WORKERS", "1").strip() != "0"


def run_job(fn, *args, report: Report = ignore, cancel: CancelToken | None = None, timeout: float | None = None,
            what: str = "worker", kind: WorkerKind | None = None, **kwargs):
    """Call fn(*args, report=..., **kwargs) in a worker process and return its result: kind's warm worker, or a
    fresh process when kind is None (timings, profiles) or STUDIO_WARM_WORKERS=0."""
    from studio.core.base.pool import POOL  # the pool is built on this module's parts

    with Handoff() as handoff:
        payload = job_payload(fn, args, kwargs, handoff)
        if kind is not None and warm_enabled():
            return POOL.run(kind, payload, report=report, cancel=cancel, timeout=timeout, what=what)
        with POOL.quiet():  # a fresh process is for timings and profiles: no warm-up disturbs them
            worker = spawn()
            try:
                send(worker, payload, last=True)
                outcome = await_outcome(worker, report=report, cancel=cancel, timeout=timeout, what=what)
            finally:
                _finish_fresh(worker)
    return unwrap(outcome, worker, what)
