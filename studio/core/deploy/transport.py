"""How Studio reaches a device: SSH (asyncssh, Studio's own known_hosts, keepalives) or a local folder (the demo
device). Both expose the same few async operations, so push, rollback, status and bench are written once."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from studio.core.deploy import known_hosts
from studio.core.deploy.inventory import Device, DeviceError, get

AGENT = Path(__file__).with_name("agent.py")
RULES = Path(__file__).parents[1] / "bundle" / "bundle_rules.py"  # the agent imports it: uploaded beside it
RUNNER = Path(__file__).parents[1] / "bundle" / "runner.py"  # the monitor's check runs this one on the release
PROFILER = RUNNER.with_name("profiler.py")  # `studio profile --device` runs this one on the release
LITERT_PROFILER = RUNNER.with_name("litert_profiler.py")  # the profiler imports it for TFLite releases
AGENT_FILES = (AGENT, RULES, RUNNER, PROFILER, LITERT_PROFILER)  # in the order the agent hashes them
CONNECT_TIMEOUT = 10.0
KEEPALIVE_S, KEEPALIVE_COUNT = 5, 3  # a frozen device is given up after about 15 s of silence
COMMAND_TIMEOUT = 60.0
CHUNK = 1 << 20
log = logging.getLogger(__name__)


class LinkLost(DeviceError):
    """The connection to a device dropped or the device stopped answering mid-step: what it runs must be read back."""


class DeviceBusy(DeviceError):
    """Another push holds the device's lock."""


T = TypeVar("T")


def drive(work: Awaitable[T]) -> T:
    """asyncio.run with one difference: a task that died with its connection (asyncssh's parallel SFTP writes do)
    is logged for engineers instead of printing 'Task exception was never retrieved' at the user."""
    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(_quiet)
        return await work
    return asyncio.run(main())


def _quiet(loop, context: dict) -> None:
    log.debug("background task ended: %s (%r)", context.get("message"), context.get("exception"))


class Process(Protocol):
    """A running remote (or local) process with line-based stdin/stdout."""

    def send(self, line: str) -> None: ...

    async def readline(self, timeout: float) -> str: ...

    async def stderr(self) -> str: ...

    async def close(self) -> None: ...


class DeviceTransport(Protocol):
    device: Device

    async def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]: ...

    async def start(self, argv: list[str]) -> Process: ...

    async def put(self, local: Path, remote: str, offset: int, progress: Callable[[int], None]) -> int: ...

    async def close(self) -> None: ...


def agent_argv(device: Device, *args: str) -> list[str]:
    return [*shlex.split(device.python), f"{device.dir}/.studio/agent.py", device.dir, *args]


class AgentSession:
    """The device agent in session mode: one remote process per push, holding the device lock, answering one
    JSON command per line. Closing it (or losing the connection) ends the process and releases the lock."""

    def __init__(self, device: Device, proc: Process):
        self.device = device
        self.proc = proc

    async def call(self, cmd: str, *args, timeout: float = COMMAND_TIMEOUT) -> dict:
        self.proc.send(json.dumps({"cmd": cmd, "args": [str(a) for a in args]}) + "\n")
        line = await self.proc.readline(timeout)
        if not line:
            raise LinkLost(f"lost the connection to {self.device.name} during '{cmd}'")
        try:
            doc = json.loads(line)
        except ValueError:
            raise DeviceError(f"{self.device.name} answered '{cmd}' with something that is not JSON") from None
        if not doc.get("ok"):
            raise DeviceError(doc.get("error", f"the device refused '{cmd}'"))
        return doc

    async def close(self) -> None:
        await self.proc.close()


async def open_session(t: DeviceTransport, lock: bool = True) -> AgentSession:
    """Start the agent (uploading it first when the device lacks this version) and, with `lock`, take the lock."""
    want = hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in AGENT_FILES)).hexdigest()
    argv = agent_argv(t.device, "session", *([] if lock else ["--no-lock"]))
    for attempt in range(2):
        proc = await t.start(argv)
        line = await proc.readline(COMMAND_TIMEOUT)
        try:
            doc = json.loads(line) if line else None
        except ValueError:
            doc = None
        if doc is not None and not doc.get("ok"):
            await proc.close()
            raise (DeviceBusy if doc.get("busy") else DeviceError)(doc.get("error", "the device refused"))
        if doc is not None and doc.get("agent") == want:
            return AgentSession(t.device, proc)
        reason = (await proc.stderr()).strip().splitlines()
        await proc.close()
        if attempt == 0:
            for f in (*AGENT_FILES[1:], AGENT):  # the agent last: its hash only matches once all are there
                await t.put(f, f"{t.device.dir}/.studio/{f.name}", 0, lambda n: None)
    raise DeviceError(f"the device could not run Studio's agent with '{t.device.python}'"
                      f" ({reason[-1] if reason else 'no output'}); is Python 3 installed there?")


# --- local folder ----------------------------------------------------------------------------------------------

class _LocalProcess:
    def __init__(self, proc):
        self.proc = proc

    def send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode())
        except OSError as exc:
            raise LinkLost(f"lost the connection to the device's agent ({_why(exc)})") from None

    async def readline(self, timeout: float) -> str:
        try:
            return (await asyncio.wait_for(self.proc.stdout.readline(), timeout)).decode()
        except TimeoutError:
            raise LinkLost(f"the device did not answer within {timeout:.0f} s") from None

    async def stderr(self) -> str:
        try:
            return (await asyncio.wait_for(self.proc.stderr.read(), 5)).decode(errors="replace")
        except TimeoutError:
            return ""

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 10)
            except (OSError, TimeoutError):
                self.proc.kill()


class LocalTransport:
    """A folder on this machine with the same layout and steps as a board: the demo device."""

    def __init__(self, device: Device):
        self.device = device
        Path(device.dir, ".studio").mkdir(parents=True, exist_ok=True)

    async def run(self, argv, timeout=COMMAND_TIMEOUT):
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            raise DeviceError(f"the device did not answer within {timeout:.0f} s") from None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def start(self, argv):
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return _LocalProcess(proc)

    async def put(self, local, remote, offset, progress):
        sent = 0
        try:
            Path(remote).parent.mkdir(parents=True, exist_ok=True)
            with open(local, "rb") as src, open(remote, "r+b" if offset else "wb") as dst:
                src.seek(offset)
                dst.seek(offset)
                dst.truncate()
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    dst.write(chunk)
                    sent += len(chunk)
                    progress(offset + sent)
                    await asyncio.sleep(0)
        except OSError as exc:
            raise DeviceError(f"upload to {self.device.name} failed ({_why(exc)})") from None
        return sent

    async def close(self):
        pass


# --- SSH -------------------------------------------------------------------------------------------------------

class _SSHProcess:
    def __init__(self, proc, device: Device):
        self.proc = proc
        self.device = device

    def send(self, line: str) -> None:
        import asyncssh

        try:
            self.proc.stdin.write(line)
        except (OSError, asyncssh.Error) as exc:  # BrokenPipeError once the channel is gone
            raise LinkLost(f"lost the connection to {self.device.name} ({_why(exc)})") from None

    async def readline(self, timeout: float) -> str:
        import asyncssh

        try:
            return await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise LinkLost(f"{self.device.name} did not answer within {timeout:.0f} s") from None
        except (OSError, asyncssh.Error) as exc:
            raise LinkLost(f"lost the connection to {self.device.name} ({_why(exc)})") from None

    async def stderr(self) -> str:
        try:
            return await asyncio.wait_for(self.proc.stderr.read(), 5)
        except Exception:  # noqa: BLE001 - only used to explain another failure
            return ""

    async def close(self) -> None:
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait(), 10)
        except Exception:  # noqa: BLE001 - the connection may already be gone, which ends the process too
            pass


async def _server_key(device: Device, tunnel=None):
    import asyncssh

    try:
        return await asyncio.wait_for(asyncssh.get_server_host_key(device.host, device.port, tunnel=tunnel),
                                      CONNECT_TIMEOUT)
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise DeviceError(f"cannot reach {device.name} at {device.host}:{device.port}"
                          f" ({_why(exc)})") from None


async def _changed_key(device: Device, trusted: str, tunnel) -> DeviceError:
    import asyncssh

    key = await _server_key(device, tunnel)
    return DeviceError(f"HOST KEY HAS CHANGED for {device.name} ({device.host}:{device.port}): Studio trusts"
                       f" {known_hosts.fingerprint(asyncssh.import_public_key(trusted))} ({trusted.split()[0]}) but"
                       f" the device now presents {known_hosts.fingerprint(key)} ({key.get_algorithm()}). This can be"
                       " a reinstalled device or an attack; if you trust the new key, run `studio devices trust"
                       f" {device.name}` again")


def _why(exc) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:160]


class SSHTransport:
    def __init__(self, device: Device, conn, tunnel_conn=None):
        self.device = device
        self.conn = conn
        self.tunnel = tunnel_conn
        self._sftp: Any = None  # asyncssh's SFTPClient, started on the first upload

    @classmethod
    async def connect(cls, device: Device) -> SSHTransport:
        import asyncssh

        tunnel = None
        if device.jump:
            tunnel = (await cls.connect(get(device.jump))).conn
        trusted = known_hosts.lookup(device.host, device.port)
        if trusted is None:
            key = await _server_key(device, tunnel)
            raise DeviceError(f"unknown host key for {device.name} ({device.host}:{device.port}): its fingerprint is"
                              f" {known_hosts.fingerprint(key)}. Check it, then run `studio devices trust"
                              f" {device.name}`")
        options: dict[str, Any] = dict(port=device.port, username=device.user,
                                       known_hosts=([asyncssh.import_public_key(trusted)], [], []),
                                       connect_timeout=CONNECT_TIMEOUT, login_timeout=CONNECT_TIMEOUT,
                                       keepalive_interval=KEEPALIVE_S, keepalive_count_max=KEEPALIVE_COUNT,
                                       tunnel=tunnel)
        if device.key:
            options["client_keys"] = [os.path.expanduser(device.key)]
            options["agent_path"] = None
        try:
            conn = await asyncssh.connect(device.host, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise await _changed_key(device, trusted, tunnel) from None
        except asyncssh.PermissionDenied:
            raise DeviceError(f"{device.name} refused the login of '{device.user}' (check the key or the"
                              " ssh-agent)") from None
        except (asyncssh.Error, ConnectionResetError, ConnectionAbortedError) as exc:
            # Offered only the trusted key's type, a device whose key changed to another type ends the key exchange
            # (a reset or "connection lost"): look at the key it presents now before saying it cannot be reached.
            presented = await _server_key(device, tunnel)
            if presented.public_data != asyncssh.import_public_key(trusted).public_data:
                raise await _changed_key(device, trusted, tunnel) from None
            raise DeviceError(f"cannot reach {device.name} at {device.host}:{device.port} ({_why(exc)})") from None
        except (TimeoutError, OSError) as exc:
            raise DeviceError(f"cannot reach {device.name} at {device.host}:{device.port} ({_why(exc)})") from None
        return cls(device, conn, tunnel)

    async def run(self, argv, timeout=COMMAND_TIMEOUT):
        import asyncssh

        try:
            result = await self.conn.run(shlex.join(argv), timeout=timeout, check=False)
        except asyncssh.TimeoutError:
            raise LinkLost(f"{self.device.name} did not answer within {timeout:.0f} s") from None
        except (OSError, asyncssh.Error) as exc:
            raise LinkLost(f"lost the connection to {self.device.name} ({_why(exc)})") from None
        return result.exit_status if result.exit_status is not None else -1, str(result.stdout or ""), \
            str(result.stderr or "")

    async def start(self, argv):
        import asyncssh

        try:
            return _SSHProcess(await self.conn.create_process(shlex.join(argv)), self.device)
        except (OSError, asyncssh.Error) as exc:
            raise LinkLost(f"lost the connection to {self.device.name} ({_why(exc)})") from None

    async def put(self, local, remote, offset, progress):
        import asyncssh

        try:
            if self._sftp is None:
                self._sftp = await self.conn.start_sftp_client()
            await self._sftp.makedirs(str(Path(remote).parent), exist_ok=True)
            sent = 0
            async with self._sftp.open(remote, "r+b" if offset else "wb") as dst:
                with open(local, "rb") as src:
                    src.seek(offset)
                    pos = offset
                    for chunk in iter(lambda: src.read(4 * CHUNK), b""):
                        await dst.write(chunk, pos)  # asyncssh splits it into parallel SFTP requests
                        pos += len(chunk)
                        sent += len(chunk)
                        progress(pos)
            return sent
        except (OSError, asyncssh.Error) as exc:
            if self.conn.is_closed() or not isinstance(exc, asyncssh.SFTPError) or \
                    isinstance(exc, asyncssh.SFTPConnectionLost):
                raise LinkLost(f"lost the connection to {self.device.name} during the upload ({_why(exc)})") from None
            raise DeviceError(f"upload to {self.device.name} failed ({_why(exc)})") from None

    async def close(self):
        self.conn.close()
        if self.tunnel is not None:
            self.tunnel.close()


async def connect(device: Device) -> DeviceTransport:
    if device.kind == "local":
        return LocalTransport(device)
    return await SSHTransport.connect(device)

