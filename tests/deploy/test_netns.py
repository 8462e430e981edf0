"""The fleet benchmark's shaped links: traffic into a namespace really is limited, and nothing made is left behind,
also when the work inside fails."""
import socket
import subprocess
import sys
import time

import pytest

from benchmarks.netns import Links, unavailable

RECEIVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], 9000)); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    n += len(b)
print(n, flush=True)
"""


def names(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def test_links_are_shaped_and_removed_even_after_an_error():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    size = 2 << 20
    with pytest.raises(RuntimeError, match="inside"), Links("8mbit") as links:  # 8 Mbit/s: 1 MB/s at most
        link = links.add()
        assert link.netns in names("netns", "list") and link.host_if in names("link")
        receiver = subprocess.Popen(["ip", "netns", "exec", link.netns, sys.executable, "-c", RECEIVER,
                                     link.address], stdout=subprocess.PIPE, text=True)
        assert receiver.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with socket.create_connection((link.address, 9000), timeout=30) as conn:
            conn.sendall(b"\0" * size)
        assert int(receiver.stdout.readline()) == size
        elapsed = time.monotonic() - start
        assert elapsed > 0.8 * size / 1e6, elapsed  # unshaped, a veth moves 2 MB in milliseconds
        raise RuntimeError("the work inside failed")
    assert link.netns not in names("netns", "list") and link.host_if not in names("link")
    assert receiver.wait(10) is not None  # the process inside the namespace was ended with it
