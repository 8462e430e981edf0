"""The standalone flasher: its modules work with the ML stack blocked, and the PyInstaller build runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.installer import flasher_build

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ["torch", "torchvision", "tensorflow", "keras", "onnx", "onnxruntime", "numpy", "pyqtgraph", "matplotlib",
           "litert_torch", "ai_edge_litert", "ai_edge_quantizer", "tf2onnx", "onnx2torch"]

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = set(sys.argv[1].split(","))
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the flasher must not import it")
    sys.meta_path.insert(0, Block())
    sys.argv = sys.argv[1:]
""")


def test_flasher_modules_work_with_torch_and_tensorflow_blocked(sample_bundles, tmp_path):
    script = BLOCKER + textwrap.dedent("""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from studio.flasher import main
        assert main(["verify", sys.argv[1], "--pubkey", sys.argv[2]]) == 0
        assert main(["devices", "add", "bench", "--local", sys.argv[3]]) == 0
        assert main(["push", sys.argv[1], "--device", "bench", "--no-smoke-test"]) == 0
        from studio.gui.app import application
        from studio.gui.flash import FlashWindow
        app, _ = application()
        window = FlashWindow()
        window.show()
        app.processEvents()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("LOADED", loaded)
    """)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script, ",".join(BLOCKED), str(sample_bundles["onnx"]),
                           sample_bundles["pub"], str(tmp_path / "board")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout
    assert "Installed v1.0.0" in done.stdout
    assert (tmp_path / "board" / "current").is_symlink()


@pytest.fixture(scope="module")
def built_flasher() -> Path:
    """dist/studio-flash built with PyInstaller, as `make installer` does (started in the background after
    collection: tests/installer/flasher_build.py)."""
    if shutil.which("objdump") is None:
        pytest.skip("PyInstaller needs objdump (Debian: binutils; `make test` installs it)")
    return flasher_build.started().binary()


def test_built_flasher_reports_its_version_and_verifies_bundles(built_flasher, sample_bundles, tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("PYTHONPATH", None)  # the binary must carry everything it needs
    version = subprocess.run([str(built_flasher), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "studio-flash 0.1.0"
    ok = subprocess.run([str(built_flasher), "verify", str(sample_bundles["tflite"]), "--pubkey",
                         sample_bundles["pub"]], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"OK {sample_bundles['tflite']}: mnist-tflite 1.0.0") and "signature OK" in ok.stdout
    bad = tmp_path / "tampered.bundle.zip"
    with zipfile.ZipFile(sample_bundles["tflite"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-1] + bytes([data[-1] ^ 1]) if item.filename.endswith(".tflite") else data)
    refused = subprocess.run([str(built_flasher), "verify", str(bad)], capture_output=True, text=True, env=env,
                             timeout=60)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "tampered.bundle.zip" in refused.stderr and "sha256" in refused.stderr
    # the flash screen starts from the binary (Qt plugins and icons are inside it)
    shown = subprocess.run([str(built_flasher), str(sample_bundles["onnx"])], capture_output=True, text=True,
                           env=dict(env, QT_QPA_PLATFORM="offscreen", STUDIO_EXIT_WHEN_SHOWN="1"), timeout=60)
    assert shown.returncode == 0, shown.stderr[-2000:]
