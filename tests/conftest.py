"""Shared fixtures: isolated user dirs, the shared third-party models, and the sample dataset and models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.installer import flasher_build

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("STUDIO_SHARED_MODELS", ROOT.parent / "shared" / "models"))


def pytest_configure(config):
    # Every test session gets its own data/config/cache dirs, so tests never touch a user's real studio files.
    # STUDIO_TEST_HOME lets a developer keep the trained samples (the data dir) between runs.
    fresh = Path(tempfile.mkdtemp(prefix="studio-test-home-"))
    kept = Path(os.environ["STUDIO_TEST_HOME"]) if os.environ.get("STUDIO_TEST_HOME") else fresh
    os.environ["XDG_DATA_HOME"] = str(kept / "xdg_data_home")
    os.environ["XDG_CONFIG_HOME"] = str(fresh / "xdg_config_home")
    os.environ["XDG_CACHE_HOME"] = str(fresh / "xdg_cache_home")
    # Qt's offscreen screen is 800x600 by default, smaller than the window; give it a desktop-sized screen.
    screen = fresh / "offscreen.json"
    screen.write_text(json.dumps({"screens": [{"name": "test", "x": 0, "y": 0, "width": 1920, "height": 1200,
                                               "logicalDpiX": 96, "logicalDpiY": 96, "dpr": 1}]}))
    os.environ.setdefault("QT_QPA_PLATFORM", f"offscreen:configfile={screen}")
    # Many tests change the environment (their own config dir), and a warm worker serves one environment only:
    # the workers of earlier tests leave after two idle minutes, so the run never holds a framework process per
    # kind and environment for the default ten.
    os.environ.setdefault("STUDIO_WORKER_IDLE", "120")


# The slow tier: whatever trains, converts or deploys models. `pytest -m "not slow"` (make test-quick) is the rest.
SLOW_MODULES = {
    "tests/core/test_sweep.py", "tests/core/test_optimize.py", "tests/core/test_fuzz_loaders.py",
    "tests/core/test_samples.py", "tests/gui/test_flow.py", "tests/cli/test_cli_bundle.py", "tests/cli/test_cli_gui.py",
    "tests/cli/test_cli_monitor.py",
    "tests/cli/test_cli_optimize.py", "tests/cli/test_cli_sweep.py", "tests/core/test_fidelity.py",
    "tests/core/test_real_inputs.py", "tests/core/test_torch_routes.py", "tests/core/test_torch_inputs.py",
    "tests/core/test_torch_files_multi.py",
    "tests/core/test_prune_keras.py", "tests/core/test_fp16_detector.py", "tests/core/test_quant_robust.py",
    "tests/core/test_quant_debug.py", "tests/cli/test_cli_debug_quant.py",
    "tests/gui/test_quant_debug_page.py", "tests/core/test_sweep_cluster.py", "tests/core/test_tflite_fp16.py",
}
SLOW_DIRS = ("tests/deploy/", "tests/installer/")  # real sshd devices, a PyInstaller build, a desktop install
SLOW_FIXTURES = {"samples"}  # trains the sample models (about 90 s) in every fresh test session


def pytest_collection_modifyitems(config, items):
    for item in items:
        where = Path(item.fspath).resolve().relative_to(ROOT).as_posix()
        if where in SLOW_MODULES or where.startswith(SLOW_DIRS) or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    flasher_build.start_if_needed([item.nodeid for item in session.items])  # what is left after -k and -m


_OUTCOME: dict[str, int] = {}


def pytest_sessionfinish(session, exitstatus):
    _OUTCOME["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    flasher_build.discard()
    # The test process holds Qt, QtWebEngine, Ray's client, torch, onnxruntime and LiteRT at once (Studio itself
    # never does: the GUI keeps frameworks in workers). Their C++ teardown at interpreter exit can abort with
    # "free(): invalid pointer" after every test passed and every report was written, which turned a green run
    # into exit code 134. Every result is final here, so leave with pytest's own exit status.
    if "status" in _OUTCOME:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_OUTCOME["status"])


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not (SHARED_MODELS / "onnx" / "mnist.onnx").is_file():
        pytest.skip(f"third-party models folder {SHARED_MODELS} is absent (it is not part of a fresh clone)")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def samples() -> dict:
    from studio.core.app.samples import ensure_samples

    return ensure_samples()


def _fp32_and_int8_sweep(samples, tmp_path_factory, target: str) -> Path:
    """A finished sweep run of the PyTorch sample: its fp32 and static int8 candidates for `target`."""
    from studio.core.recipe.grid import Grid
    from studio.core.sweep.sweep import run_sweep

    run = tmp_path_factory.mktemp(f"{target}-int8-sweep") / "run"
    run_sweep(samples["torch_model"], Grid(targets=(target,), quant=("none", "int8")), samples["dataset"], run)
    return run


@pytest.fixture(scope="session")
def int8_sweep(samples, tmp_path_factory) -> Path:
    """fp32 and static int8 ONNX candidates (the quantization debugger's subject)."""
    return _fp32_and_int8_sweep(samples, tmp_path_factory, "onnx")


@pytest.fixture(scope="session")
def tflite_int8_sweep(samples, tmp_path_factory) -> Path:
    """fp32 and static int8 TFLite candidates (made by ai-edge-quantizer)."""
    return _fp32_and_int8_sweep(samples, tmp_path_factory, "tflite")


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m studio ARGS` the way a user runs the CLI."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=ROOT)


@pytest.fixture(scope="session")
def sample_bundles(samples, tmp_path_factory) -> dict:
    """Signed ONNX and TFLite bundles of the PyTorch sample (int8), and the key that signed them."""
    from studio.core.bundle.bundle import build_bundle, read_labels, resolve_source
    from studio.core.bundle.signing import new_keypair
    from studio.core.optimize.optimize import optimize
    from studio.core.recipe.recipe import Quantization, Recipe

    root = tmp_path_factory.mktemp("bundles")
    key, pub = new_keypair(root / "signing.key")
    out = {"key": str(key), "pub": str(pub), "root": root}
    for target in ("onnx", "tflite"):
        optimize(samples["torch_model"], Recipe(target=target, quantization=Quantization("int8")), root / target,
                 calib=samples["dataset"])
        path = root / f"mnist-{target}.bundle.zip"
        build_bundle(resolve_source(root / target), path, name=f"mnist-{target}", version="1.0.0",
                     labels=read_labels(samples["labels"]), sign_key=str(key))
        out[target] = path
        out[f"{target}_dir"] = root / target
    return out
