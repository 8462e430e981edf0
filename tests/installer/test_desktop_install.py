"""The desktop installer: install, upgrade (switch only after success), uninstall (user data kept) in a fake home.

pip runs with --no-deps (and --no-index for the failing upgrade): the test checks the installer's own steps, not
a second multi-gigabyte download of the stack that `make test` already installed."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """dist/studio-desktop as `make installer` writes it: the wheel, the script and the constraints."""
    out = tmp_path_factory.mktemp("studio-desktop")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path_factory.mktemp("wheel-build"))
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.copy(ROOT / "installer" / "install-desktop.sh", out)
    shutil.copy(ROOT / "installer" / "constraints.txt", out)
    return out


def run(kit: Path, home: Path, *args: str, pip: str = "--no-deps") -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "PYTHON": sys.executable, "STUDIO_PIP_ARGS": pip,
           "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config")}
    return subprocess.run(["sh", str(kit / "install-desktop.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_install_upgrade_uninstall(kit, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = run(kit, home, "install")
    assert done.returncode == 0, done.stderr
    app = home / "data" / "studio" / "app"
    first = (app / "current").resolve()
    launcher = home / ".local" / "bin" / "studio"
    version = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "studio 0.1.0"
    flash = subprocess.run([str(home / ".local" / "bin" / "studio-flash"), "--version"], capture_output=True,
                           text=True, timeout=60)
    assert flash.stdout.strip() == "studio-flash 0.1.0"
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(home / "data" / "applications" / "studio.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Exec"] == f"{app}/current/bin/studio gui" and desktop["Icon"] == "studio"
    assert desktop["Type"] == "Application" and desktop["Categories"].endswith(";")
    assert (home / "data" / "icons" / "hicolor" / "scalable" / "apps" / "studio.svg").read_text().startswith("<svg")
    assert run(kit, home, "install").returncode == 1  # a second install says to upgrade

    # user data that must survive upgrades and a plain uninstall
    (home / "config" / "studio").mkdir(parents=True)
    (home / "config" / "studio" / "devices.toml").write_text("[devices]\n")
    (home / "data" / "studio" / "projects").mkdir(parents=True)
    (home / "data" / "studio" / "projects" / "last.studio.json").write_text("{}")

    # an upgrade that cannot install changes nothing
    failed = run(kit, home, "upgrade", pip="--no-index")
    assert failed.returncode == 1 and "nothing was changed" in failed.stderr
    assert (app / "current").resolve() == first and len(list((app / "releases").iterdir())) == 1
    # a good upgrade switches to the new release and removes the old one
    done = run(kit, home, "upgrade")
    assert done.returncode == 0, done.stderr
    second = (app / "current").resolve()
    assert second != first and not first.exists() and [p for p in (app / "releases").iterdir()] == [second]
    assert subprocess.run([str(launcher), "--version"], capture_output=True, text=True).returncode == 0

    done = run(kit, home, "uninstall")
    assert done.returncode == 0, done.stderr
    assert not app.exists() and not launcher.exists() and not launcher.is_symlink()
    assert not (home / "data" / "applications" / "studio.desktop").exists()
    assert (home / "config" / "studio" / "devices.toml").is_file()
    assert (home / "data" / "studio" / "projects" / "last.studio.json").is_file()
    done = run(kit, home, "uninstall", "--purge")
    assert done.returncode == 0 and not (home / "config" / "studio").exists()
    assert not (home / "data" / "studio").exists()
