"""Long work off the GUI thread: a core function runs in a Python thread (which itself waits on worker processes);
progress, events, results and errors come back as queued Qt signals, and Cancel reaches the core's CancelToken.
A TaskRunner holds one window's tasks: one main task at a time, and keyed ones where a new start cancels the old."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.core.base.errors import Cancelled, StudioError, crash_log, short, unexpected
from studio.core.base.progress import CancelToken


class Task(QObject):
    progressed = Signal(float, str)
    event_received = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, title: str, fn, *args, events: bool = False, **kwargs):
        super().__init__()
        self.name = title
        self.token = CancelToken()
        self._fn, self._args, self._kwargs, self._events = fn, args, kwargs, events
        self._thread: threading.Thread | None = None

    def start(self) -> Task:
        self._thread = threading.Thread(target=self._run, name=f"task-{self.name}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        kwargs = dict(self._kwargs, report=self.progressed.emit, cancel=self.token)
        if self._events:
            kwargs["on_event"] = self.event_received.emit
        try:
            result = self._fn(*self._args, **kwargs)
        except Cancelled:
            self.cancelled.emit()
        except StudioError as exc:
            self.failed.emit(exc.one_line())
        except Exception as exc:  # noqa: BLE001 - shown as a message; the traceback goes to the crash log
            self.failed.emit(unexpected(short(exc, 300), crash_log(exc)))
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()



class TaskRunner(QObject):
    """The tasks of one window, the way Orange's widgets run theirs.

    The main task (key None) is the one long job the window shows with progress and a Cancel; a second is refused
    while it runs. A keyed task (a bundle check, a status refresh) cancels the one running under the same key, whose
    result is then dropped. Handlers run on the GUI thread, after the runner has let the task go, so a handler may
    start the next one. Every task is referenced until its thread ends."""
    main_started = Signal(object)  # Task
    main_finished = Signal(object)  # Task

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.main: Task | None = None
        self._keyed: dict[str, Task] = {}
        self._alive: set[Task] = set()

    @property
    def idle(self) -> bool:
        return self.main is None and not self._alive

    def start(self, task: Task, on_ok: Callable[[Any], None], on_error: Callable[[str], None], *,
              key: str | None = None, on_cancel: Callable[[], None] | None = None) -> bool:
        if key is None and self.main is not None:
            return False
        if key is None:
            self.main = task
        else:
            previous = self._keyed.get(key)
            if previous is not None:
                previous.cancel()
            self._keyed[key] = task
        task.succeeded.connect(self._then(task, key, on_ok))
        task.failed.connect(self._then(task, key, on_error))
        task.cancelled.connect(self._then(task, key, lambda _=None: on_cancel and on_cancel()))
        task.finished.connect(lambda: self._ended(task, key))
        self._alive.add(task)
        if key is None:
            self.main_started.emit(task)
        task.start()
        return True

    def cancel_main(self) -> None:
        if self.main is not None:
            self.main.cancel()

    def shutdown(self, timeout: float = 10) -> None:
        """Cancel every task and wait for its thread (the window is closing)."""
        for task in list(self._alive):
            task.cancel()
            task.wait(timeout)

    def _then(self, task: Task, key: str | None, handler: Callable[..., None]) -> Callable[..., None]:
        def call(*value: Any) -> None:
            current = self._release(task, key)
            if current:
                handler(*value)
        return call

    def _release(self, task: Task, key: str | None) -> bool:
        """Let the task go; False when it was replaced by a newer one (its outcome no longer matters)."""
        if key is None:
            if self.main is task:
                self.main = None
                self.main_finished.emit(task)
            return True
        if self._keyed.get(key) is task:
            del self._keyed[key]
            return True
        return False

    def _ended(self, task: Task, key: str | None) -> None:
        self._release(task, key)
        self._alive.discard(task)
