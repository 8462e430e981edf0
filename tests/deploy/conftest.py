"""Fixtures for deploy tests: a pool of real sshd devices, client keys, and bundles of several sizes."""
from __future__ import annotations

import getpass
import itertools
import sys

import numpy as np
import pytest

from tests.deploy.sshd import Server, available, keygen

POOL = 20
_names = itertools.count()


@pytest.fixture(scope="session")
def ssh_pool(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("sshd")
    client_key = keygen(root / "client_key")
    authorized = root / "authorized_keys"
    authorized.write_text((root / "client_key.pub").read_text())
    servers = [Server(root / f"dev{i}", authorized).start() for i in range(POOL)]
    yield {"servers": servers, "key": str(client_key)}
    for s in servers:
        s.stop()


@pytest.fixture
def make_device(ssh_pool, tmp_path):
    """A fresh device on sshd #i: new install dir, in the inventory, host key trusted (unless trust=False)."""
    import asyncio

    import asyncssh

    from studio.core.deploy import inventory, known_hosts

    def make(i: int = 0, trust: bool = True, **changes):
        server = ssh_pool["servers"][i]
        name = f"dev{next(_names)}"
        fields = dict(name=name, host="127.0.0.1", port=server.port, user=getpass.getuser(), key=ssh_pool["key"],
                      dir=str(tmp_path / name), python=sys.executable, tags=("lab",))
        fields.update(changes)
        device = inventory.Device(**fields)
        inventory.add(device)
        if trust:
            key = asyncio.run(asyncssh.get_server_host_key("127.0.0.1", server.port))
            known_hosts.trust("127.0.0.1", server.port, key)
        elif known_hosts.path().is_file():  # an earlier test may have trusted this server: forget it
            want = known_hosts.host_id(device.host, device.port)
            kept = [line for line in known_hosts.path().read_text().splitlines() if line.split()[0] != want]
            known_hosts.path().write_text("".join(f"{line}\n" for line in kept))
        return device
    return make


def big_onnx(path, megabytes: int):
    """An ONNX model of about `megabytes` MB of random float weights (they do not compress)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = megabytes * (1 << 20) // 4 // 256
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((256, n)).astype(np.float32) * 0.01, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.fixture(scope="session")
def deploy_bundles(sample_bundles, tmp_path_factory):
    """v1 and v2 of the small sample bundle, and an 8 MB bundle (for resume and full-disk tests)."""
    from studio.core.bundle.bundle import ExportSource, build_bundle, resolve_source

    root = tmp_path_factory.mktemp("deploy-bundles")
    out = {}
    for version in ("1.0", "2.0"):
        out[version] = root / f"mnist-{version}.bundle.zip"
        build_bundle(resolve_source(sample_bundles["onnx_dir"]), out[version], name="mnist", version=version)
    big = big_onnx(root / "big.onnx", 8)
    out["big"] = root / "big.bundle.zip"
    build_bundle(ExportSource(big), out["big"], name="big", version="1.0")
    return out
