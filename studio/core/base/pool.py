"""Warm workers: one worker process per framework that imports it once and serves every job of that kind.

A warm worker is used only by callers whose environment, sys.path and working folder are the ones it started
with (else it is replaced); it is replaced after a crash, a cancel or a timeout; it exits by itself after
STUDIO_WORKER_IDLE seconds (default 600) without a job, when its parent dies, and at the parent's exit.
STUDIO_WARM_WORKERS=0 gives every job a fresh process, as kind=None does."""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from enum import StrEnum

from studio.core.base.errors import JobCrashed
from studio.core.base.jobs import Worker, await_outcome, job_payload, send, spawn, stop, unwrap, warm_enabled
from studio.core.base.progress import CancelToken, Report, ignore

DEFAULT_IDLE_S = 600.0
MAX_IDLE = 2  # warm workers kept per kind: a sweep runs two jobs of one kind at once


class WorkerKind(StrEnum):
    """The framework a worker imports; jobs of one kind share its warm worker."""
    TORCH = "torch"
    TENSORFLOW = "tensorflow"
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"


_IMPORTS = {WorkerKind.TORCH: ("torch",), WorkerKind.TENSORFLOW: ("tensorflow",),
            WorkerKind.ONNXRUNTIME: ("onnx", "onnxruntime"), WorkerKind.LITERT: ("ai_edge_litert.interpreter",)}


def idle_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get("STUDIO_WORKER_IDLE", DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def _identity() -> tuple:
    """What a worker inherits from its caller at start (the test runner's per-test variable aside)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"))
    return env, tuple(sys.path), os.getcwd()


def preload(kind: str, report: Report = ignore) -> int:
    """Import the kind's framework (a warm-up job); returns the worker's pid."""
    import importlib

    for name in _IMPORTS[WorkerKind(kind)]:
        importlib.import_module(name)
    return os.getpid()


class WorkerPool:
    """The warm workers of this process, by kind; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[WorkerKind, list[Worker]] = {}
        self._all: set[Worker] = set()
        self._calm = threading.Condition()  # warm-ups under way, and timings that want none
        self._warming = 0
        self._timing = 0

    def run(self, kind: WorkerKind, payload: bytes, *, report: Report = ignore, cancel: CancelToken | None = None,
            timeout: float | None = None, what: str = "worker"):
        """Run one pickled job on kind's warm worker and return its result (jobs.run_job's contract)."""
        kind = WorkerKind(kind)
        outcome, worker = self._attempt(kind, payload, report, cancel, timeout, what, last=False)
        if outcome is None:  # the warm worker had just left: the job never ran, so it runs once on a fresh one
            outcome, worker = self._attempt(kind, payload, report, cancel, timeout, what, last=True)
        assert outcome is not None  # the last attempt returns an outcome or raises
        self._put_back(kind, worker)
        return unwrap(outcome, worker, what)

    def _attempt(self, kind: WorkerKind, payload: bytes, report: Report, cancel: CancelToken | None,
                 timeout: float | None, what: str, *, last: bool) -> tuple[tuple | None, Worker]:
        """The job's outcome on a worker of kind; None (unless `last`) when that worker had already exited by
        itself before the job started."""
        worker, progressed = self._acquire(kind), threading.Event()

        def forward(fraction: float, message: str) -> None:
            progressed.set()
            report(fraction, message)

        send(worker, payload)
        try:
            return await_outcome(worker, report=forward, cancel=cancel, timeout=timeout, what=what), worker
        except JobCrashed:
            self._drop(worker)
            # exit code 0 before any progress: it left for idleness just as the job came; the job never ran
            retry = not last and worker.proc.returncode == 0 and not progressed.is_set()
            worker.keep_log = worker.keep_log and not retry
            stop(worker)
            if retry:
                return None, worker
            raise
        except BaseException:
            self._drop(worker)
            stop(worker)
            raise

    def warm(self, kinds: Iterable[WorkerKind]) -> None:
        """Start kinds' workers and import their frameworks (blocking: run it on a background thread); nothing when
        warm workers are off."""
        if not warm_enabled():
            return
        for kind in kinds:
            with self._calm:
                self._calm.wait_for(lambda: not self._timing)
                self._warming += 1
            try:
                self.run(kind, job_payload(preload, (str(kind),), {}), what=f"the {kind} worker")
            finally:
                with self._calm:
                    self._warming -= 1
                    self._calm.notify_all()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """While timing: wait for the warm-ups under way (a framework's import takes a core for seconds) and start
        no other until the timing is done."""
        with self._calm:
            self._timing += 1
            self._calm.wait_for(lambda: not self._warming)
        try:
            yield
        finally:
            with self._calm:
                self._timing -= 1
                self._calm.notify_all()

    def warm_in_background(self, kinds: Iterable[WorkerKind]) -> threading.Thread:
        kinds = tuple(kinds)

        def go() -> None:
            with contextlib.suppress(Exception):  # warming is a head start only; the real job reports any failure
                self.warm(kinds)

        thread = threading.Thread(target=go, name="warm-workers", daemon=True)
        thread.start()
        return thread

    def pids(self, kind: WorkerKind) -> list[int]:
        """The idle workers of kind that a job from this caller would run on."""
        identity = _identity()
        with self._lock:
            return [w.pid for w in self._idle.get(WorkerKind(kind), []) if w.identity == identity and w.alive()]

    def close(self) -> None:
        """Stop every worker (at interpreter exit, or when a caller is done)."""
        with self._lock:
            workers, self._all, self._idle = list(self._all), set(), {}
        for worker in workers:
            stop(worker, grace=1)

    def _acquire(self, kind: WorkerKind) -> Worker:
        identity, now, idle = _identity(), time.monotonic(), idle_seconds()
        stale: list[Worker] = []
        found = None
        with self._lock:
            waiting = self._idle.setdefault(kind, [])
            while waiting and found is None:
                worker = waiting.pop()
                # retire it a little before its own idle exit, so a job never races that exit
                fresh = now - worker.idle_since < idle - min(5.0, idle * 0.2)
                if worker.identity == identity and fresh and worker.alive():
                    found = worker
                else:
                    stale.append(worker)
                    self._all.discard(worker)
        for worker in stale:
            stop(worker, grace=1)
        if found is not None:
            return found
        worker = spawn(serve_idle=idle)
        worker.identity = identity
        with self._lock:
            self._all.add(worker)
        return worker

    def _put_back(self, kind: WorkerKind, worker: Worker) -> None:
        worker.idle_since = time.monotonic()
        with self._lock:
            waiting = self._idle.setdefault(kind, [])
            keep = worker in self._all and len(waiting) < MAX_IDLE
            if keep:
                waiting.append(worker)
            else:
                self._all.discard(worker)
        if not keep:
            stop(worker, grace=1)

    def _drop(self, worker: Worker) -> None:
        with self._lock:
            self._all.discard(worker)


POOL = WorkerPool()
atexit.register(POOL.close)
