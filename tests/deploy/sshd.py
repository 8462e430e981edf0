"""Real OpenSSH servers on loopback for deploy tests: each one is a 'device'."""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on port {port}")


def keygen(path: Path, key_type: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    return path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Server:
    """One sshd: its own host key, port and authorized_keys; on loopback, or inside the network namespace `netns`
    on that namespace's `address` (the fleet benchmark's shaped links)."""

    def __init__(self, root: Path, authorized: Path, netns: str | None = None, address: str = "127.0.0.1"):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.authorized = authorized
        self.netns, self.address = netns, address
        self.port = 22 if netns else free_port()
        self.proc: subprocess.Popen | None = None
        self.new_host_key()

    def new_host_key(self, key_type: str = "ed25519") -> None:
        for p in self.root.glob("host_key*"):
            p.unlink()
        keygen(self.root / "host_key", key_type)

    def sessions(self) -> list[int]:
        """The per-connection sshd processes under the listener (not the commands they run, like the agent)."""
        assert self.proc is not None
        tree, found, todo = _children(), [], [self.proc.pid]
        while todo:
            for child in tree.get(todo.pop(), []):
                if _comm(child).startswith("sshd"):
                    found.append(child)
                    todo.append(child)
        return found

    def drop_sessions(self) -> int:
        """Kill every connection's sshd process: the link drops as if the network went away; the device's own
        processes (the agent, a model check) run on and see their input end."""
        pids = self.sessions()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def freeze(self) -> None:
        """The whole device hangs: sshd and every connection stop answering (SIGSTOP), sockets stay open."""
        assert self.proc is not None
        for pid in [self.proc.pid, *self.sessions()]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        for pid in [self.proc.pid, *self.sessions()]:
            os.kill(pid, signal.SIGCONT)

    def start(self) -> Server:
        cfg = self.root / "sshd_config"
        cfg.write_text(f"""Port {self.port}
ListenAddress {self.address}
HostKey {self.root / 'host_key'}
PidFile {self.root / 'sshd.pid'}
AuthorizedKeysFile {self.authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxStartups 256:30:512
LogLevel ERROR
""")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with open(self.root / "sshd.log", "ab") as log:  # the child keeps its own copy of the descriptor
            inside = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.proc = subprocess.Popen([*inside, SSHD, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=log)
        wait_for_port(self.port, host=self.address)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


class SilentServer:
    """Accepts TCP connections and never says a word: a frozen device."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def available() -> str | None:
    """None when real sshd tests can run here, else the reason they cannot."""
    if not Path(SSHD).exists():
        return "openssh-server is not installed (make test installs it: installer/system-deps.sh)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    if os.geteuid() != 0 and getpass.getuser() == "root":
        return "cannot tell the login user"
    return None
