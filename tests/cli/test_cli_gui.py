"""`studio gui`, `studio demo` and `studio flash` without a screen: one clear line, exit code 1."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("command", [["gui"], ["flash"]])
def test_no_display_gives_one_clear_line(command):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "studio", *command], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "Traceback" not in done.stderr


def test_demo_without_a_display_runs_the_whole_pass_in_the_terminal(samples, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # a machine with no devices set up
    done = subprocess.run([sys.executable, "-m", "studio", "demo"], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no display, so the demo runs in the terminal" in done.stderr
    out = done.stdout
    # the bundle holds the model, the runner, the sample and the check set
    assert "2. Sweep: 8 candidates" in out and "best" in out and "verified: 4 files" in out
    deployed = [line for line in out.splitlines() if line.strip().startswith("demo:")]
    assert len(deployed) == 2 and ("Installed v1.0.0, check passed" in deployed[0]
                                   or "Already runs v1.0.0" in deployed[0])
    assert "5. Monitor" in out and deployed[1].split(",")[0].strip() in ("demo: ok", "demo: slower")
