"""The graph view's server: Netron's page and the model's own bytes on 127.0.0.1 only, offline, closed by stop()."""
from __future__ import annotations

import http.client
import re
import socket
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import onnx
import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.look.graph_server import TORCH_SAVE_NOTE, serve_graph
from tests.core.look_models import convnet

NETRON = Path(__import__("netron").__file__).parent


def get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP GET, as a browser sends it (Host header and all)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    path = tmp_path / "conv net.onnx"  # a space: the page must quote the name it fetches
    onnx.save(convnet(), path)
    return path


@pytest.fixture
def served():
    """serve_graph(path), stopped after the test."""
    servers = []

    def serve(path):
        servers.append(serve_graph(path))
        return servers[-1]

    yield serve
    for s in servers:
        s.stop()


def model_url(page: bytes, page_url: str) -> str:
    """The URL Netron's script fetches the model from: the page's `file` meta tag, relative to the page."""
    found = re.search(rb'<meta name="file" content="([^"]+)">', page)
    assert found, "the page does not tell Netron which file to open"
    return urljoin(page_url, found.group(1).decode())


def check_serves(server, path: Path) -> None:
    assert urlsplit(server.url).hostname == "127.0.0.1"
    status, headers, page = get(server.url)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert page.startswith(b"<!DOCTYPE html>") and b"<title>Netron</title>" in page
    status, _, body = get(model_url(page, server.url))
    assert status == 200 and body == path.read_bytes()
    for script in re.findall(rb'<script[^>]* src="([^"]+)"', page):  # the viewer's own code, unchanged
        status, _, body = get(urljoin(server.url, script.decode()))
        assert status == 200 and body == (NETRON / script.decode()).read_bytes()


def test_serves_netron_and_an_onnx_models_bytes_on_loopback(onnx_file, served):
    check_serves(served(onnx_file), onnx_file)


def test_serves_netron_and_a_tflite_models_bytes_on_loopback(shared_models, served):
    path = shared_models / "tflite" / "hello_world_int8.tflite"
    check_serves(served(path), path)


def test_the_page_keeps_netron_offline(onnx_file, served):
    """No version tag (Netron starts Google Analytics and its update nag from it), the consent cookie set (else it
    asks ipinfo.io where the user is), and connections allowed to this server only."""
    status, headers, page = get(served(onnx_file).url)
    assert status == 200
    assert b'name="version"' not in page and b'name="date"' not in page
    assert b'name="version"' in (NETRON / "index.html").read_bytes()  # what was taken out was there
    assert re.match(r"consent=\w+", headers["set-cookie"])
    assert "connect-src 'self'" in headers["content-security-policy"]


def test_stop_closes_the_port(onnx_file):
    server = serve_graph(onnx_file)
    assert get(server.url)[0] == 200
    server.stop()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    server.stop()  # twice is harmless


def test_only_the_viewer_and_the_models_folder_are_served(onnx_file, served):
    server = served(onnx_file)
    secret = onnx_file.parent.parent / "secret.txt"
    secret.write_text("not for the page")
    root = f"http://127.0.0.1:{server.port}"
    assert get(f"{root}/index.html")[0] == 404  # without the random prefix: another local program guessing
    assert get(f"{server.url}data/../secret.txt")[0] == 404
    assert get(f"{server.url}data/%2e%2e/secret.txt")[0] == 404
    assert get(f"{server.url}server.py")[0] == 404  # netron's own Python, not a viewer asset
    assert get(server.url, host=f"attacker.example:{server.port}")[0] == 403  # DNS rebinding to 127.0.0.1


def test_an_onnx_models_external_weights_are_served_beside_it(tmp_path, served):
    path = tmp_path / "big.onnx"
    onnx.save(convnet(), path, save_as_external_data=True, all_tensors_to_one_file=True, location="big.onnx.data",
              size_threshold=0)
    server = served(path)
    status, _, body = get(f"{server.url}data/big.onnx.data")
    assert status == 200 and body == (tmp_path / "big.onnx.data").read_bytes() and len(body) > 1000


def test_an_optimize_output_folder_shows_its_model(onnx_file, tmp_path, served):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(onnx_file.read_bytes())
    server = served(folder)
    assert server.model == (folder / "model.onnx").resolve()
    assert get(server.data_url)[2] == onnx_file.read_bytes()


def test_a_state_dict_says_netron_shows_its_weights_only(tmp_path, served):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    assert served(path).note == TORCH_SAVE_NOTE
    script = tmp_path / "net.pt"
    torch.jit.script(torch.nn.Linear(3, 2)).save(script)
    assert served(script).note is None


def test_a_missing_or_unsupported_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nothing\.onnx: file not found"):
        serve_graph(tmp_path / "nothing.onnx")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelLoadError, match=r"notes\.txt: unsupported file extension '\.txt'"):
        serve_graph(text)
