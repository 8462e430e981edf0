"""How a sweep spends its time: a pool of worker threads over typed tasks (a group's float conversion, then each of
its candidates), a time budget, and the measure gate that keeps latency measurements alone on the machine."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from studio.core.base.errors import Cancelled
from studio.core.base.progress import CancelToken
from studio.core.optimize.stage import FloatStage
from studio.core.recipe.grid import Candidate


class MeasureGate:
    """Latency is measured alone: a measurement waits for running conversions and holds new ones back."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0
        self._measuring = False

    @contextmanager
    def work(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._measuring)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    @contextmanager
    def measure(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._measuring)
            self._measuring = True
            self._cond.wait_for(lambda: self._busy == 0)
        try:
            yield
        finally:
            with self._cond:
                self._measuring = False
                self._cond.notify_all()


@dataclass(frozen=True)
class GroupTask:
    """Make the float stage shared by candidates of one target and pruning ratio."""
    members: tuple[Candidate, ...]

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.members]


@dataclass(frozen=True)
class CandidateTask:
    """Finish, evaluate and time one candidate from its group's float stage."""
    candidate: Candidate
    stage: FloatStage

    @property
    def ids(self) -> list[str]:
        return [self.candidate.id]


Task = GroupTask | CandidateTask


def group_tasks(pending: Iterable[Candidate]) -> list[Task]:
    """One GroupTask per (target, pruning ratio), in the grid's order."""
    groups: dict[tuple[str, float], list[Candidate]] = {}
    for c in pending:
        groups.setdefault(c.group, []).append(c)
    return [GroupTask(tuple(members)) for members in groups.values()]


class Scheduler:
    """Run `handle(task)` on `workers` threads until no task is left; a handler returns follow-up tasks. After the
    deadline no task starts (its candidates are listed in `skipped`); a cancel or an unexpected error stops the
    pool, and the error is raised once every worker has stopped."""

    def __init__(self, handle: Callable[[Task], Iterable[Task]], *, workers: int, deadline: float | None,
                 cancel: CancelToken):
        self._handle, self._workers, self.deadline, self._cancel = handle, max(1, workers), deadline, cancel
        self._cond = threading.Condition()
        self._tasks: deque[Task] = deque()
        self._running = 0
        self._errors: list[BaseException] = []
        self.skipped: list[str] = []

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def run(self, tasks: Iterable[Task]) -> None:
        self._tasks.extend(tasks)
        threads = [threading.Thread(target=self._work, daemon=True, name=f"sweep-{i}") for i in range(self._workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._errors:
            raise self._errors[0]

    def _stopped(self) -> bool:
        return self._cancel.cancelled or bool(self._errors)

    def _next(self) -> Task | None:
        """The next task to run, or None when the pool is done; skips what the budget leaves no time for."""
        with self._cond:
            while True:
                self._cond.wait_for(lambda: self._tasks or self._running == 0 or self._stopped())
                if self._stopped() or (not self._tasks and self._running == 0):
                    self._cond.notify_all()
                    return None
                task = self._tasks.popleft()
                if not self.out_of_time():
                    self._running += 1
                    return task
                self.skipped.extend(task.ids)
                self._cond.notify_all()

    def _work(self) -> None:
        while (task := self._next()) is not None:
            more: list[Task] = []
            try:
                more = list(self._handle(task))
            except Cancelled:
                self._cancel.cancel()
            except BaseException as exc:  # noqa: BLE001 - raised by run() after the other workers stop
                self._errors.append(exc)
            finally:
                with self._cond:
                    self._tasks.extend(more)
                    self._running -= 1
                    self._cond.notify_all()
