"""The hashes a push relies on, against independent tools: OpenSSH's own fingerprint, hashlib over the bytes."""
import hashlib
import shutil
import subprocess

import pytest

from studio.core.base.hashing import sha256_file
from studio.core.deploy import known_hosts


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_host_key_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    import asyncssh

    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    theirs = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], check=True, capture_output=True,
                            text=True).stdout.split()[1]
    public = asyncssh.import_public_key((tmp_path / "key.pub").read_text())
    assert known_hosts.fingerprint(public) == theirs


@pytest.mark.parametrize("limit", [None, 0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 5, 10 << 20])
def test_sha256_of_a_prefix_matches_hashlib_over_those_bytes(tmp_path, limit):
    data = bytes(range(256)) * ((3 << 20) // 256) + b"tail"  # over three 1 MiB chunks, not a whole number of them
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, limit) == hashlib.sha256(data if limit is None else data[:limit]).hexdigest()
