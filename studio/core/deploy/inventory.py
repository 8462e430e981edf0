"""The device inventory: devices.toml in the user's config dir (platformdirs, XDG_CONFIG_HOME honoured)."""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from studio.core.base import atomic
from studio.core.base.errors import StudioError
from studio.core.base.paths import config_dir, data_dir

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
INVENTORY_VERSION = 1
SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/boot", "/dev", "/proc", "/sys", "/run", "/var/lib/dpkg",
               "/var/lib/apt", "/var/lib/rpm", "/var/log", "/var/cache", "/var/spool")
SYSTEM_TOPS = ("/var", "/var/lib", "/home", "/root", "/opt", "/srv", "/mnt", "/media", "/tmp", "/usr/local")


class DeviceError(StudioError):
    """A device cannot be reached, refuses, or a push to it failed (the message says what is left on it)."""


@dataclass(frozen=True)
class Device:
    name: str
    host: str = ""
    port: int = 22
    user: str = "root"
    key: str | None = None  # private key file; None: use the ssh-agent
    dir: str = "/opt/studio"  # install dir on the device
    tags: tuple[str, ...] = ()
    jump: str | None = None  # another device to hop through
    python: str = "python3"
    keep: int = 3  # releases kept on the device (current and previous never deleted)
    kind: str = "ssh"  # "ssh" or "local" (a folder on this machine: the demo device)

    def __post_init__(self):
        if not NAME.match(self.name):
            raise DeviceError(f"device name '{self.name}' must be 1-64 letters, digits, '.', '_' or '-'")
        if self.kind not in ("ssh", "local"):
            raise DeviceError(f"device kind must be 'ssh' or 'local', not '{self.kind}'")
        if self.kind == "ssh" and not self.host:
            raise DeviceError(f"device '{self.name}' needs a host")
        if not 0 < int(self.port) < 65536:
            raise DeviceError(f"port {self.port} is not a TCP port")
        if self.keep < 2:
            raise DeviceError("keep at least 2 releases (current and previous)")
        if self.kind == "ssh":
            check_dir(self.dir)
        elif not self.dir:
            raise DeviceError(f"local device '{self.name}' needs a folder")
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "port", int(self.port))

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}" if self.kind == "ssh" else f"local folder {self.dir}"

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if v is not None and k != "name"}


def check_dir(folder: str) -> None:
    """A device's install dir: absolute, normalized, and not a system folder (a push writes and deletes in it)."""
    if not folder.startswith("/"):
        raise DeviceError(f"install dir '{folder}' must be an absolute path on the device (like /opt/studio)")
    if ".." in folder.split("/") or posixpath.normpath(folder) != folder:
        raise DeviceError(f"install dir '{folder}' must be written plainly (no '..', '.', '//' or trailing '/'):"
                          f" {posixpath.normpath(folder)}?")
    system = folder in ("/", *SYSTEM_TOPS) or re.fullmatch(r"/lib[^/]*", "/" + folder.split("/")[1]) or any(
        folder == d or folder.startswith(d + "/") for d in SYSTEM_DIRS)
    if system and not folder.startswith("/usr/local/"):
        raise DeviceError(f"install dir '{folder}' is a system folder: use a folder of its own, like /opt/studio")


def key_file(key: str | None) -> str | None:
    """A private key as an absolute path, so the device is reached the same from any folder (None: the ssh-agent)."""
    if not key:
        return None
    path = os.path.abspath(os.path.expanduser(key))
    if not os.path.isfile(path):
        raise DeviceError(f"{path}: no such key file")
    return path


def inventory_path() -> Path:
    return config_dir() / "devices.toml"


def load() -> dict[str, Device]:
    path = inventory_path()
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeviceError(f"not valid TOML ({exc})", path) from None
    devices = {}
    fields = {f.name for f in dataclasses.fields(Device)}
    for name, entry in doc.get("devices", {}).items():
        unknown = set(entry) - fields
        if unknown:
            raise DeviceError(f"device '{name}' has unknown key(s): {', '.join(sorted(unknown))}", path)
        try:
            devices[name] = Device(name=name, **entry)
        except DeviceError as exc:
            raise DeviceError(exc.message, path) from None
        except TypeError as exc:
            raise DeviceError(f"device '{name}': {exc}", path) from None
    return devices


def save(devices: dict[str, Device]) -> None:
    doc = {"schema_version": INVENTORY_VERSION, "devices": {n: d.to_dict() for n, d in sorted(devices.items())}}
    atomic.write_text(inventory_path(), tomli_w.dumps(doc))


def add(device: Device, replace: bool = False) -> None:
    devices = load()
    if device.name in devices and not replace:
        raise DeviceError(f"device '{device.name}' already exists (remove it first, or use --replace)")
    devices[device.name] = device
    save(devices)


def remove(name: str) -> None:
    devices = load()
    if name not in devices:
        raise DeviceError(f"no device named '{name}'")
    del devices[name]
    save(devices)


def get(name: str) -> Device:
    devices = load()
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none yet: add one with `studio devices add`"
        raise DeviceError(f"no device named '{name}' (known: {known})")
    return devices[name]


def select(names: list[str] | None = None, tag: str | None = None) -> list[Device]:
    if names:
        return [get(n) for n in names]
    tagged = [d for d in load().values() if tag in d.tags]
    if not tagged:
        raise DeviceError(f"no device has the tag '{tag}'")
    return sorted(tagged, key=lambda d: d.name)


def demo_device(root: Path | None = None) -> Device:
    """The local demo device: a folder on this machine that behaves like a board (same layout and steps)."""
    import sys

    folder = root or data_dir() / "demo-device"
    return Device(name="demo", kind="local", dir=str(folder), python=sys.executable, tags=("demo",))
