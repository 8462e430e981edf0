"""Where the studio keeps user data, config and caches (platformdirs, honouring XDG_* variables)."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "studio"


def _xdg(var: str, fallback: str) -> Path:
    # platformdirs reads XDG_* on Linux already; reading it here too keeps tests that set it mid-process honest.
    value = os.environ.get(var)
    return Path(value) / APP if value else Path(fallback)


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", platformdirs.user_data_dir(APP))


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", platformdirs.user_config_dir(APP))


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", platformdirs.user_cache_dir(APP))


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
