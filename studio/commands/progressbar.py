"""A terminal progress bar for the core's report(fraction, message) callbacks (drawn on stderr).

Drawn only when stderr is a terminal, like pip and curl: scripts and CI logs get results and errors only."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, stream=None, width: int = 28, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.width = width
        self.active = enabled and self.stream.isatty()
        self._drawn = False
        self._last_draw = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if not self.active:
            return
        fraction = max(0.0, min(1.0, fraction))
        now = time.monotonic()
        if now - self._last_draw < 0.05 and fraction < 1.0:
            return
        self._last_draw = now
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {message[:60]:<60}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * (self.width + 68) + "\r")  # leave the terminal clean for the result
            self.stream.flush()
            self._drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
