"""Long work off the GUI thread: a core function runs in a Python thread (which itself waits on worker processes);
progress, events, results and errors come back as queued Qt signals, and Cancel reaches the core's CancelToken."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from studio.core.base.errors import Cancelled, StudioError, crash_log
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
            self.failed.emit(f"Unexpected error: {type(exc).__name__}: {exc} (details in {crash_log(exc)})")
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()
