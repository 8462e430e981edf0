"""`verify` against malformed bundles made here (flipped bytes, truncations, compression methods, the encrypted flag,
manifest variants, bad key paths): always one line and a StudioError (CLI exit 1, never 2); and every bundle verify
accepts also unpacks with the device agent, which applies the same rules."""
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from studio.core.base.errors import StudioError
from studio.core.bundle import bundle_rules
from studio.core.bundle.bundle import ExportSource, build_bundle, verify_bundle
from studio.core.bundle.signing import new_keypair
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "studio" / "core" / "deploy" / "agent.py"


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real signed bundle of a tiny ONNX model and its key pair."""
    root = tmp_path_factory.mktemp("verify-rules")
    key, pub = new_keypair(root / "k")
    path = root / "tiny.bundle.zip"
    build_bundle(ExportSource(tiny_onnx(root / "tiny.onnx")), path, name="tiny", version="1.0", sign_key=str(key))
    return {"path": path, "pub": pub, "root": root}


class Device:
    """A device folder with the agent and its rules as Studio uploads them; `unpacks` runs the real install step."""

    def __init__(self, root: Path):
        self.root = root
        (root / ".studio" / "incoming").mkdir(parents=True)
        shutil.copy(AGENT, root / ".studio" / "agent.py")
        shutil.copy(bundle_rules.__file__, root / ".studio" / "bundle_rules.py")
        self.count = 0

    def unpacks(self, bundle: Path) -> dict:
        self.count += 1
        sha = f"{self.count:064x}"
        shutil.copy(bundle, self.root / ".studio" / "incoming" / f"{sha}.zip")
        proc = subprocess.run([sys.executable, "-I", str(self.root / ".studio" / "agent.py"), str(self.root),
                               "install", sha, f"r{self.count}"], capture_output=True, text=True, timeout=60)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def outcome(path: Path, pubkey=None):
    """'ok' or the one-line error; anything but a StudioError fails the test (that was exit 2)."""
    try:
        verify_bundle(path, pubkey)
        return "ok"
    except StudioError as exc:
        line = exc.one_line()
        assert "\n" not in line and line.strip(), line
        return line


def central_entries(data: bytes):
    """Offsets of each central directory entry and its member's local header."""
    end = data.rindex(b"PK\x05\x06")
    count, _, start = struct.unpack("<HII", data[end + 10:end + 20])
    pos, out = start, []
    for _ in range(count):
        n, m, k = struct.unpack("<HHH", data[pos + 28:pos + 34])
        out.append((pos, struct.unpack("<I", data[pos + 42:pos + 46])[0]))
        pos += 46 + n + m + k
    return out


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def mutations(data: bytes):
    """(label, bytes): flipped bytes, truncations, compression methods and the encrypted flag in both headers."""
    step = max(1, len(data) // 400)
    for i in range(0, len(data), step):
        out = bytearray(data)
        out[i] ^= 0xFF
        yield f"flip@{i}", bytes(out)
    for cut in sorted({*range(0, len(data), max(1, len(data) // 60)), len(data) - 1, len(data) - 22}):
        yield f"truncate@{cut}", data[:cut]
    for central, local in central_entries(data):
        for method in (1, 6, 8, 9, 12, 14, 98, 99):
            yield f"central-method{method}@{central}", patched(data, central + 10, "<H", method)
            yield f"local-method{method}@{local}", patched(data, local + 8, "<H", method)
        flags = struct.unpack("<H", data[central + 8:central + 10])[0]
        yield f"central-encrypted@{central}", patched(data, central + 8, "<H", flags | 1)
        yield f"both-encrypted@{central}", patched(patched(data, central + 8, "<H", flags | 1), local + 6, "<H",
                                                   flags | 1)


def rezip(src: Path, dst: Path, manifest: bytes | None = None, extra=(), method=zipfile.ZIP_DEFLATED) -> Path:
    """The bundle again, unsigned, with another manifest.json and extra (name, data) members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", method) as zout:
        for zi in zin.infolist():
            if zi.filename == bundle_rules.SIGNATURE:
                continue
            data = manifest if manifest is not None and zi.filename == bundle_rules.MANIFEST else zin.read(zi)
            zout.writestr(zi.filename, data)
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def manifest_variants(good_manifest: dict, model: bytes):
    """(label, manifest bytes, extra members): each breaks one manifest rule, the rest stays valid."""
    text = json.dumps(good_manifest, indent=2, sort_keys=True)
    with_member = dict(good_manifest, files=dict(good_manifest["files"], **{
        name: {"sha256": bundle_rules.hashlib.sha256(b"x").hexdigest(), "size": 1}
        for name in (".studio",)}))
    yield "utf-8 BOM", b"\xef\xbb\xbf" + text.encode(), ()
    yield "utf-16", text.encode("utf-16"), ()
    yield "utf-16-le", text.encode("utf-16-le"), ()
    yield "latin-1 byte", text.replace('"tiny"', '"t\xe9ny"').encode("latin-1"), ()
    yield "100000 [", b"[" * 100000, ()
    yield "deep object", ('{"a":' * 5000 + "1" + "}" * 5000).encode(), ()
    yield "deep but parses", ("[" * 200 + "]" * 200).encode(), ()
    version = f'"schema_version": {good_manifest["schema_version"]}'
    yield "NaN", text.replace(version, '"schema_version": NaN').encode(), ()
    yield "repeated key", text.replace(version, f"{version}, {version}").encode(), ()
    yield "a list", b"[]", ()
    yield "files a list", json.dumps(dict(good_manifest, files=[])).encode(), ()
    yield "member .studio", json.dumps(with_member).encode(), ((".studio", b"x"),)
    for name in ("current", "releases", ".hidden", "a b", "\u00e9.bin"):
        entry = {"sha256": bundle_rules.hashlib.sha256(b"x").hexdigest(), "size": 1}
        yield f"member {name!r}", json.dumps(dict(good_manifest, files=dict(good_manifest["files"],
                                                                              **{name: entry}))).encode(), \
            ((name, b"x"),)
    yield "bad sha", json.dumps(dict(good_manifest, files={k: {"sha256": "zz", "size": v["size"]}
                                                           for k, v in good_manifest["files"].items()})).encode(), ()
    yield "no runner", json.dumps(dict(good_manifest, files={good_manifest["model"]: good_manifest["files"][
        good_manifest["model"]]})).encode(), ()
    yield "model not a string", json.dumps(dict(good_manifest, model=["model.onnx"])).encode(), ()
    yield "empty", b"", ()


def test_every_mutated_bundle_is_one_line_and_accepted_ones_unpack_on_the_device(good, tmp_path):
    data = good["path"].read_bytes()
    device = Device(tmp_path / "device")
    accepted, refused = [], 0
    for label, bad in mutations(data):
        if bad == data:  # a method patched to the one it already has
            continue
        path = tmp_path / "m.zip"
        path.write_bytes(bad)
        result = outcome(path, good["pub"])
        if result == "ok":
            accepted.append(label)
            doc = device.unpacks(path)
            assert doc["ok"], (label, doc)
        else:
            refused += 1
            assert str(path) in result, result
    # the deflate data, the central directory and the manifest are most of the file: most mutations are caught
    assert refused > 400 and refused > 5 * len(accepted), (refused, accepted)
    # nothing that changes what a member holds may pass: only header bytes that the reader ignores
    assert not any(label.startswith(("central-method", "central-encrypted", "both-encrypted", "truncate"))
                   for label in accepted), accepted


@pytest.mark.parametrize("method, fragment", [(zipfile.ZIP_STORED, None), (zipfile.ZIP_BZIP2, "compression method 12"),
                                              (zipfile.ZIP_LZMA, "compression method 14")])
def test_compression_methods_follow_one_rule(good, tmp_path, method, fragment):
    path = rezip(good["path"], tmp_path / "m.zip", method=method)
    result = outcome(path)
    doc = Device(tmp_path / "device").unpacks(path)
    if fragment is None:
        assert result == "ok" and doc["ok"], (result, doc)
    else:
        assert fragment in result and not doc["ok"] and fragment in doc["error"], (result, doc)


def test_manifest_rules_are_the_devices(good, tmp_path):
    with zipfile.ZipFile(good["path"]) as zf:
        manifest = json.loads(zf.read(bundle_rules.MANIFEST))
        model = zf.read(manifest["model"])
    device = Device(tmp_path / "device")
    plain = rezip(good["path"], tmp_path / "plain.zip", json.dumps(manifest).encode())
    assert outcome(plain) == "ok" and device.unpacks(plain)["ok"]  # the variants below differ only in the manifest
    seen = set()
    for label, text, extra in manifest_variants(manifest, model):
        path = rezip(good["path"], tmp_path / "v.zip", text, extra)
        result = outcome(path)
        doc = device.unpacks(path)
        assert result != "ok", label
        assert "manifest.json" in result or "member" in result, (label, result)
        assert not doc["ok"], (label, doc)  # the device refuses what verify refuses, for the manifest rules
        seen.add(label)
    assert {"utf-8 BOM", "utf-16", "100000 [", "member .studio", "NaN", "repeated key"} <= seen


def test_cli_exits_1_with_one_line_for_each_kind(good, tmp_path):
    data = good["path"].read_bytes()
    with zipfile.ZipFile(good["path"]) as zf:
        at = zf.namelist().index("model.onnx")
        zi = zf.infolist()[at]
    central, _ = central_entries(data)[at]  # the central directory lists the members in the same order
    inside = zi.header_offset + 30 + len(zi.filename) + len(zi.extra) + 2
    flipped = bytearray(data)
    flipped[inside] ^= 0xFF
    flags = struct.unpack("<H", data[central + 8:central + 10])[0]
    cases = {"deflate.zip": bytes(flipped), "m9.zip": patched(data, central + 10, "<H", 9),
             "m99.zip": patched(data, central + 10, "<H", 99),
             "enc.zip": patched(data, central + 8, "<H", flags | 1)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    rezip(good["path"], tmp_path / "brackets.zip", b"[" * 100000)
    runs = [((str(tmp_path / n),), tmp_path / n) for n in [*cases, "brackets.zip"]]
    for key in (tmp_path, tmp_path / "none.pub", good["path"]):  # a folder, a missing file, not a key
        runs.append(((str(good["path"]), "--pubkey", str(key)), key))
    runs.append(((str(tmp_path),), tmp_path))
    for args, named in runs:
        result = run_cli("verify", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (args, result.stderr)
        assert "internal error" not in lines[0] and f"{named}:" in lines[0], lines


def test_signature_against_trusted_keys(good, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    unchecked = run_cli("verify", str(good["path"]), env=env)
    assert unchecked.returncode == 0 and "signature not checked" in unchecked.stdout
    assert "signed by" not in unchecked.stdout and "signature OK" not in unchecked.stdout
    _, other = new_keypair(tmp_path / "other")
    for pub in (other, good["pub"]):
        assert run_cli("keys", "trust", str(pub), env=env).returncode == 0
    listed = run_cli("keys", "list", env=env).stdout
    assert listed.count("SHA256:") == 2 and "k.pub" in listed
    ok = run_cli("verify", str(good["path"]), "--json", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["signature_checked"], ok.stdout
    with zipfile.ZipFile(good["path"]) as zf:
        signature = zf.read(bundle_rules.SIGNATURE)
        manifest = json.loads(zf.read(bundle_rules.MANIFEST))
    tampered = rezip(good["path"], tmp_path / "t.zip", json.dumps(dict(manifest, version="9.9")).encode(),
                     extra=[(bundle_rules.SIGNATURE, signature)])
    bad = run_cli("verify", str(tampered), env=env)
    assert bad.returncode == 1 and "signature does not match manifest.json for trusted key" in bad.stderr, bad.stderr
    fingerprint = json.loads(ok.stdout)["key_fingerprint"]
    assert run_cli("keys", "untrust", fingerprint, env=env).returncode == 0
    again = run_cli("verify", str(good["path"]), env=env)
    assert again.returncode == 0 and "signature not checked" in again.stdout and fingerprint in again.stdout
    assert "signature OK" not in again.stdout
    assert os.path.exists(tmp_path / "config" / "studio" / "trusted_keys.txt")
