"""The plain progress and cancel protocol every long core function takes: report(fraction, message), cancel."""
from __future__ import annotations

import threading
from typing import Protocol

from studio.core.base.errors import Cancelled


class Report(Protocol):
    def __call__(self, fraction: float, message: str) -> None: ...


def ignore(fraction: float, message: str) -> None:
    """A report callback that drops progress."""


class CancelToken:
    """Set from any thread; checked by long work at safe points."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def scaled(report: Report, start: float, end: float) -> Report:
    """A report callback that maps 0..1 onto start..end of a parent's range."""

    def inner(fraction: float, message: str) -> None:
        report(start + (end - start) * max(0.0, min(1.0, fraction)), message)

    return inner
