"""One model's graph in Netron's viewer (shipped in the netron wheel), served on loopback and kept offline: the
page Studio serves carries no version (Netron's telemetry and its "please update" check key on it) and the
consent cookie (else the page asks ipinfo.io where the user is), and its policy allows connections to itself only."""
from __future__ import annotations

import http.server
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from studio.core.base.errors import ModelLoadError
from studio.core.bundle.bundle import resolve_source
from studio.core.inspect.formats import Format, detect
from studio.core.sweep.run_folder import RunFolder

LOOPBACK = "127.0.0.1"
VIEWER_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
                ".json": "application/json", ".png": "image/png", ".ico": "image/x-icon"}
POLICY = "connect-src 'self' blob: data:"  # adds to the page's own script-src/frame-src policy


def viewer_dir() -> Path:
    """Where the netron wheel keeps its web viewer."""
    try:
        import netron
    except ImportError:
        raise ModelLoadError("the graph view needs the netron package (pip install netron==9.3.3)") from None
    return Path(netron.__file__).resolve().parent


TORCH_SAVE_NOTE = ("Netron reads a torch.save file without running it, so it shows the weights the file holds, not"
                   " the graph (export the model to TorchScript, .pt2 or ONNX to see its graph)")


def graph_file(path: str | Path) -> tuple[Path, str | None]:
    """The file Netron reads for a model the inspector supports, a sweep candidate (RUN/ID) or an `optimize` output
    folder, and what the user should know about how much of it Netron can draw, if anything."""
    p = _model_in(Path(path))
    fmt = detect(p)
    if fmt == Format.SAVEDMODEL:
        p = p / "saved_model.pb" if (p / "saved_model.pb").is_file() else p / "saved_model.pbtxt"
    return p.resolve(), TORCH_SAVE_NOTE if fmt == Format.TORCH_SAVE else None


def _model_in(p: Path) -> Path:
    """The model a folder of Studio's names (model.onnx or model.tflite); any other path is the model itself."""
    saved_model = any((p / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt"))
    if p.is_file() or saved_model or not (p.is_dir() or RunFolder.of_candidate(p)):
        return p
    return resolve_source(p).model


def index_page(viewer: Path, model: Path) -> bytes:
    """Netron's index.html told which file to open, without its version and build date (see the module doc)."""
    html = (viewer / "index.html").read_text(encoding="utf-8")
    html = re.sub(r'<meta name="date" content="[^"]*">\n?', "", html)
    meta = "\n".join(f'<meta name="{k}" content="{escape(v)}">' for k, v in (
        ("type", "Python"), ("file", f"data/{quote(model.name)}"), ("name", model.name), ("identifier", model.name)))
    page, found = re.subn(r'<meta name="version" content="[^"]*">', lambda _: meta, html)
    if not found:
        raise ModelLoadError("this netron version's index.html has no version tag to replace", viewer / "index.html")
    return page.encode("utf-8")


@dataclass(frozen=True)
class GraphServer:
    """A running server: `url` shows `model` in Netron until `stop()`."""
    url: str
    model: Path
    port: int
    note: str | None  # what Netron cannot show of this model, in one line
    _httpd: http.server.ThreadingHTTPServer = field(repr=False, compare=False)
    _thread: threading.Thread = field(repr=False, compare=False)

    @property
    def data_url(self) -> str:
        """Where the viewer fetches the model's bytes."""
        return f"{self.url}data/{quote(self.model.name)}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Close the port; safe to call twice."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


def serve_graph(path: str | Path) -> GraphServer:
    """Serve `path` (ONNX, TFLite, Keras, PyTorch, SavedModel) in Netron on 127.0.0.1 at a free port, under a
    random path prefix so that no other local program can guess the URL and read the model's folder."""
    model, note = graph_file(path)
    viewer = viewer_dir()
    prefix = f"/{secrets.token_urlsafe(12)}/"
    handler: type[_Handler] = type("NetronHandler", (_Handler,), {"viewer": viewer, "model": model, "prefix": prefix,
                                                  "index": index_page(viewer, model)})
    httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    httpd.daemon_threads = True
    port = httpd.server_port
    handler.hosts = frozenset({f"{LOOPBACK}:{port}", f"localhost:{port}"})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"netron-{port}", daemon=True)
    thread.start()
    return GraphServer(f"http://{LOOPBACK}:{port}{prefix}", model, port, note, httpd, thread)


class _Handler(http.server.BaseHTTPRequestHandler):
    viewer: Path
    model: Path
    prefix: str
    index: bytes
    hosts: frozenset[str]  # the Host headers this server answers: its own address only

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format, *args) -> None:
        pass  # every asset request would print a line to the terminal

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if self.headers.get("Host", "") not in self.hosts:
            self._send(403, None, None, send_body)  # another host name for 127.0.0.1: a DNS-rebinding page
        elif not path.startswith(self.prefix):
            self._send(404, None, None, send_body)
        else:
            self._route(unquote(path[len(self.prefix):]), send_body)

    def _route(self, rel: str, send_body: bool) -> None:
        if rel in ("", "index.html"):
            self._send(200, VIEWER_TYPES[".html"], self.index, send_body)
        elif rel.startswith("data/"):  # the model, and files beside it (an ONNX model's external weights)
            self._send_file(_inside(self.model.parent, rel[len("data/"):]), "application/octet-stream", send_body)
        else:
            file = _inside(self.viewer, rel)
            kind = VIEWER_TYPES.get(file.suffix) if file else None
            self._send_file(file if kind else None, kind or "", send_body)

    def _send_file(self, file: Path | None, kind: str, send_body: bool) -> None:
        if file is None:
            self._send(404, None, None, send_body)
            return
        self._head(200, kind, file.stat().st_size)
        if send_body:
            with open(file, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile)

    def _send(self, code: int, kind: str | None, body: bytes | None, send_body: bool) -> None:
        body = body if body is not None else str(code).encode()
        self._head(code, kind or "text/plain", len(body))
        if send_body:
            self.wfile.write(body)

    def _head(self, code: int, kind: str, length: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Security-Policy", POLICY)
        self.send_header("Cache-Control", "no-store")
        # Netron asks for consent to its analytics unless this cookie is set; Studio turns them off instead.
        self.send_header("Set-Cookie", "consent=1; Path=/; SameSite=Strict")
        self.end_headers()


def _inside(root: Path, rel: str) -> Path | None:
    """`root/rel` when it is a regular file under root (no `..` or link out of it), else None."""
    file = (root / rel).resolve()
    return file if file.is_relative_to(root.resolve()) and file.is_file() else None
