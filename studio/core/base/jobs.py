"""Run heavy framework work in a fresh worker process, so a crash in a converter never takes the caller down.

`run_job(fn, *args, report=..., cancel=..., timeout=...)` calls `fn(*args, report=child_report, **kwargs)` in
`python -m studio.core.base.worker`. Progress comes back as it happens; the return value or a StudioError comes back
at the end; a segfault, an out-of-memory kill or a hang becomes a JobCrashed with a plain message; cancel kills
the worker. The worker is a plain subprocess (not multiprocessing), so the caller's __main__ is never re-run.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from studio.core.base.errors import Cancelled, JobCrashed, StudioError, unexpected
from studio.core.base.progress import CancelToken, Report, ignore

# Quiet the frameworks' C++ logging and keep TensorFlow's float sums in a repeatable order.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "GRPC_VERBOSITY": "ERROR",
              "PYTHONWARNINGS": "ignore"}


def read_message(fd: int):
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack("!I", header)[0])
    return None if body is None else pickle.loads(body)


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
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = struct.pack("!I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


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


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_job(fn, *args, report: Report = ignore, cancel: CancelToken | None = None, timeout: float | None = None,
            what: str = "worker", **kwargs):
    """Call fn(*args, report=..., **kwargs) in a worker process and return its result."""
    log_fd, log_path = tempfile.mkstemp(prefix="studio-job-", suffix=".log")
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **WORKER_ENV)
    # the worker must import whatever the caller can (fn is pickled by reference to its module)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "studio.core.base.worker", str(write_fd)],
                                stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, pass_fds=(write_fd,), env=env)
    finally:
        os.close(write_fd)
        os.close(log_fd)
    outcome = None
    assert proc.stdin is not None  # stdin=PIPE
    try:
        proc.stdin.write(pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the worker died at start; the loop below reports how
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while outcome is None:
            if cancel is not None and cancel.cancelled:
                _stop(proc)
                raise Cancelled()
            if deadline is not None and time.monotonic() > deadline:
                _stop(proc)
                raise JobCrashed(f"{what} did not finish within {timeout:.0f} s and was stopped")
            ready, _, _ = select.select([read_fd], [], [], 0.05)
            if not ready:
                continue
            msg = read_message(read_fd)
            if msg is None:  # pipe closed without a result: the worker died
                proc.wait()
                raise JobCrashed(f"{what} {_describe_exit(proc.returncode)}; details in {log_path}")
            if msg[0] == "progress":
                report(msg[1], msg[2])
            else:
                outcome = msg
    finally:
        os.close(read_fd)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            _stop(proc)
    if outcome[0] == "failed":  # an exception no check foresaw: the log keeps its traceback
        raise StudioError(unexpected(outcome[1], log_path, what))
    Path(log_path).unlink(missing_ok=True)
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]
