"""A terminal progress bar for the core's report(fraction, message) callbacks (drawn on stderr)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, stream=None, width: int = 28, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last_message = None
        self._last_draw = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        fraction = max(0.0, min(1.0, fraction))
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.05 and fraction < 1.0:
                return
            self._last_draw = now
            filled = int(self.width * fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {message[:60]:<60}")
            self.stream.flush()
        elif message != self._last_message:
            self.stream.write(f"[{fraction * 100:3.0f}%] {message}\n")
            self.stream.flush()
        self._last_message = message

    def close(self) -> None:
        if self.enabled and self.tty and self._last_message is not None:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
