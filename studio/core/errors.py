"""The project's own error types: every failure a user can cause ends as one of these, with a one-line message."""
from __future__ import annotations

import os


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
