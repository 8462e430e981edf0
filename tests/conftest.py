"""Shared fixtures: isolated user dirs, the shared third-party models, and the sample dataset and models."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("STUDIO_SHARED_MODELS", ROOT.parent / "shared" / "models"))


def pytest_configure(config):
    # Every test session gets its own data/config/cache dirs, so tests never touch a user's real studio files.
    # STUDIO_TEST_HOME lets a developer keep the trained samples between runs.
    home = Path(os.environ.get("STUDIO_TEST_HOME") or tempfile.mkdtemp(prefix="studio-test-home-"))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = str(home / var.lower())
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not (SHARED_MODELS / "onnx" / "mnist.onnx").is_file():
        pytest.skip(f"third-party models folder {SHARED_MODELS} is absent (it is not part of a fresh clone)")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def samples() -> dict:
    from studio.core.samples import ensure_samples

    return ensure_samples()


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m studio ARGS` the way a user runs the CLI."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=ROOT)
