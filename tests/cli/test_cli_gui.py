"""`studio gui`, `studio demo` and `studio flash` without a screen: one clear line, exit code 1."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", [["gui"], ["demo"], ["flash"]])
def test_no_display_gives_one_clear_line(command):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "studio", *command], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "Traceback" not in done.stderr
