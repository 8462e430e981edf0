"""The project's own error types: every failure a user can cause ends as one of these, with a one-line message."""
from __future__ import annotations

import os
import re
import traceback


class StudioError(Exception):
    """A failure to report to the user as one line: '<file>: <what is wrong>'."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = " ".join(str(self.message).split())
        return f"{self.path}: {text}" if self.path else text

    def __reduce__(self):  # keep path and message across process boundaries
        return (self.__class__, (self.message, self.path))


class ModelLoadError(StudioError):
    """A model file is missing, malformed, unsupported or refused by its runtime."""


class RecipeError(StudioError):
    """A recipe is invalid or asks for a combination that cannot work."""


class ConversionError(StudioError):
    """A conversion, pruning or quantization step failed or missed its tolerance."""


class DataError(StudioError):
    """A dataset is missing, malformed or does not fit the model."""


class JobCrashed(StudioError):
    """A worker process died (segfault, out of memory) instead of returning."""


class Cancelled(StudioError):
    """The user cancelled a long job."""

    def __init__(self, message: str = "cancelled", path=None):
        super().__init__(message, path)


# What an exception with an empty message means, in words (IndexError() alone would print nothing at all).
_SILENT = {IndexError: "an index was out of range", KeyError: "a required entry was missing",
           AssertionError: "an internal check failed", StopIteration: "a sequence ended early",
           MemoryError: "the machine ran out of memory", RecursionError: "the model is nested too deeply"}
# Exception class names that frameworks put in front of their own messages, onnxruntime's bracketed form
# "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : " included.
_PREFIX = re.compile(r"^(?:\[?[A-Za-z_][\w.]*(?:Error|Exception|Failure)\]?\s*:\s*(?:\d+\s*:\s*[A-Z_]+\s*:\s*)?)+")


def short(exc: BaseException, limit: int = 200, *, empty: str | None = None) -> str:
    """One readable line for any exception, at most `limit` characters; never raises, never empty.

    `empty` is what to say when the exception carries no message (the caller knows best what that means there)."""
    try:
        text = _PREFIX.sub("", " ".join(str(exc).split()))
        if isinstance(exc, KeyError) and exc.args and text == repr(exc.args[0]):
            text = f"no entry named {text}"  # KeyError('conv1_weights') prints only the quoted key
    except Exception:  # noqa: BLE001 - a broken __str__ or __repr__ must not hide the original failure
        text = ""
    if not text:
        kind = next((w for t, w in _SILENT.items() if isinstance(exc, t)), "an unexpected internal error")
        text = empty or f"{kind} (no further details were given)"
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def unexpected(reason: str, log: str, what: str = "") -> str:
    """What a user reads about a failure no check foresaw: the reason in words (no exception class name), that it
    is a bug, and where its traceback went."""
    who = f"{what} failed unexpectedly" if what else "unexpected failure"
    return f"{who}: {reason} (a bug in Studio or in a framework it uses; please report it with the details in {log})"


def crash_log(exc: BaseException) -> str:
    """Append `exc`'s traceback to the crash log in the cache folder; returns the log's path, to name to the user."""
    from studio.core.base.paths import cache_dir, ensure

    path = ensure(cache_dir()) / "crash.log"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    return str(path)
