"""Run heavy framework work in a fresh worker process, so a crash in a converter never takes the caller down.

`run_job(fn, *args, report=..., cancel=..., timeout=...)` calls `fn(*args, report=child_report, **kwargs)` in a
spawned process. Progress comes back as it happens; the return value or a StudioError comes back at the end; a
segfault, an out-of-memory kill or a hang becomes a JobCrashed with a plain message; cancel kills the worker.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
import traceback
from pathlib import Path

from .errors import Cancelled, JobCrashed, StudioError
from .progress import CancelToken, Report, ignore

# Quiet the frameworks' C++ logging in workers; these are read when TensorFlow / absl load.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: keep results repeatable
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def _child(conn, log_path: str, fn, args, kwargs) -> None:
    # Library chatter (TensorFlow banners, warnings) goes to a log file, not the user's terminal.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.05:  # keep the pipe calm: at most ~20 updates a second
            last[0] = now
            conn.send(("progress", float(fraction), str(message)))

    try:
        result = fn(*args, report=report, **kwargs)
        conn.send(("ok", result))
    except StudioError as exc:
        conn.send(("error", exc))
    except BaseException as exc:  # noqa: BLE001 - everything else becomes a one-line StudioError
        traceback.print_exc()
        text = str(exc).strip().splitlines()
        summary = f"{type(exc).__name__}: {text[0] if text else ''}".strip(": ")
        conn.send(("error", StudioError(f"{summary} (details in {log_path})")))
    finally:
        conn.close()


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


def _stop(proc) -> None:
    proc.terminate()
    proc.join(3)
    if proc.is_alive():
        proc.kill()
        proc.join()


def run_job(fn, *args, report: Report = ignore, cancel: CancelToken | None = None, timeout: float | None = None,
            what: str = "worker", **kwargs):
    """Call fn(*args, report=..., **kwargs) in a spawned process and return its result."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    log = tempfile.NamedTemporaryFile(prefix="studio-job-", suffix=".log", delete=False)
    log.close()
    proc = ctx.Process(target=_child, args=(child, log.name, fn, args, kwargs), daemon=True)
    proc.start()
    child.close()
    deadline = None if timeout is None else time.monotonic() + timeout
    outcome = None
    try:
        while outcome is None:
            if cancel is not None and cancel.cancelled:
                _stop(proc)
                raise Cancelled()
            if deadline is not None and time.monotonic() > deadline:
                _stop(proc)
                raise JobCrashed(f"{what} did not finish within {timeout:.0f} s and was stopped")
            if parent.poll(0.05):
                try:
                    msg = parent.recv()
                except EOFError:
                    proc.join(5)
                    raise JobCrashed(f"{what} {_describe_exit(proc.exitcode)}; details in {log.name}") from None
                if msg[0] == "progress":
                    report(msg[1], msg[2])
                else:
                    outcome = msg
            elif not proc.is_alive() and not parent.poll(0):
                raise JobCrashed(f"{what} {_describe_exit(proc.exitcode)}; details in {log.name}")
    finally:
        parent.close()
        if proc.is_alive():
            proc.join(5)
            if proc.is_alive():
                _stop(proc)
    if outcome[0] == "error":
        if log.name not in str(outcome[1]):
            Path(log.name).unlink(missing_ok=True)
        raise outcome[1]
    Path(log.name).unlink(missing_ok=True)
    return outcome[1]
