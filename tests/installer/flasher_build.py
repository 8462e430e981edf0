"""The PyInstaller build of studio-flash takes about two minutes. When a session will run the built flasher's test,
the build starts in the background right after collection and deselection (at low priority), so the tests before
it run meanwhile; the fixture then only waits for what is left."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEEDED_BY = "tests/installer/test_flasher.py::test_built_flasher"


class FlasherBuild:
    """One PyInstaller run of installer/studio-flash.spec into a temporary folder."""

    def __init__(self) -> None:
        self.out = Path(tempfile.mkdtemp(prefix="studio-flasher-"))
        self.log = self.out / "build.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath",
                 str(self.out / "dist"), "--workpath", str(self.out / "build"),
                 str(ROOT / "installer" / "studio-flash.spec")],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=lambda: os.nice(10))

    def binary(self, timeout: float = 900) -> Path:
        """The built binary, once the build has finished; AssertionError with the build's log if it failed."""
        code = self.proc.wait(timeout=timeout)
        assert code == 0, self.log.read_text(errors="replace")[-3000:]
        binary = self.out / "dist" / "studio-flash" / "studio-flash"
        assert binary.is_file()
        return binary

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.out, ignore_errors=True)


_started: list[FlasherBuild] = []


def start_if_needed(nodeids: list[str]) -> None:
    """Start the build if one of `nodeids` needs it and PyInstaller can run here (it needs objdump)."""
    if not _started and shutil.which("objdump") and any(n.startswith(NEEDED_BY) for n in nodeids):
        _started.append(FlasherBuild())


def started() -> FlasherBuild:
    """The background build, or a new one (a session that selected the test in a way the hook did not see)."""
    if not _started:
        _started.append(FlasherBuild())
    return _started[0]


def discard() -> None:
    while _started:
        _started.pop().discard()
