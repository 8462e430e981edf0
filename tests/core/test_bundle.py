"""Bundles: round trip, reproducibility, tamper and zip-slip refusals with precise messages, a clean-room runner."""
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from studio.core.bundle.bundle import (
    BundleError,
    build_bundle,
    bundle_check_set,
    resolve_source,
    safe_extract,
    verify_bundle,
)
from studio.core.bundle.signing import SigningError, new_keypair
from studio.core.schemas import load_schema

SITE = Path(os.__file__).parent  # only used to find where numpy and the runtimes are installed


def rewrite(src, dst, change=lambda name, data: data, extra=(), drop=(), raw_names=None):
    """Copy a zip member by member, changing, dropping or adding members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for zi in zin.infolist():
            if zi.filename in drop:
                continue
            data = change(zi.filename, zin.read(zi))
            zout.writestr(zi, data)
        for item in extra:
            if isinstance(item, zipfile.ZipInfo):
                zout.writestr(item, b"x")
            else:
                zout.writestr(item[0], item[1])
    return dst


def refused(path, fragment, pubkey=None):
    with pytest.raises(BundleError) as err:
        verify_bundle(path, pubkey)
    line = err.value.one_line()
    assert fragment in line and str(path) in line and "\n" not in line, line
    return line


def test_round_trip_onnx_and_tflite(sample_bundles, tmp_path):
    for target in ("onnx", "tflite"):
        result = verify_bundle(sample_bundles[target], sample_bundles["pub"])
        m = result.manifest
        assert result.signature_checked and m["format"] == target and m["model"] == f"model.{target}"
        assert set(m["files"]) == {f"model.{target}", "runner.py", "sample.npz", "checks.npz"} and m["labels"][3] == "3"
        assert m["recipe"]["quantization"]["mode"] == "int8" and m["metrics"]["host"]["cpus"]
        assert m["source"]["name"] == "mnist_cnn.pt2" and len(m["source"]["sha256"]) == 64
        runtime = m["runtime"]
        assert runtime["name"] == ("onnxruntime" if target == "onnx" else "tflite") and runtime["min_version"]
        dest = tmp_path / target
        safe_extract(sample_bundles[target], dest)
        members = ["checks.npz", "manifest.json", f"model.{target}", "runner.py", "sample.npz"]
        assert sorted(p.name for p in dest.iterdir()) == members
        assert os.stat(dest / "runner.py").st_mode & 0o777 == 0o755


def test_manifest_schema_is_valid_and_used(sample_bundles):
    import jsonschema

    schema = load_schema("manifest")
    jsonschema.Draft202012Validator.check_schema(schema)
    with zipfile.ZipFile(sample_bundles["onnx"]) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    jsonschema.validate(manifest, schema)
    manifest.pop("runtime")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, schema)


def test_same_inputs_give_identical_bytes(sample_bundles, tmp_path, monkeypatch):
    # the promise's host latency is measured at each export, so "the same inputs" includes the same check set
    src = resolve_source(sample_bundles["onnx_dir"])
    kw = dict(name="m", version="2.0", sign_key=sample_bundles["key"], checks=bundle_check_set(src))
    a = build_bundle(src, tmp_path / "a.bundle.zip", **kw)
    build_bundle(src, tmp_path / "b.bundle.zip", **kw)
    assert a["created"] is None and (tmp_path / "a.bundle.zip").read_bytes() == (tmp_path / "b.bundle.zip").read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = build_bundle(src, tmp_path / "c.bundle.zip", **kw)
    build_bundle(src, tmp_path / "d.bundle.zip", **kw)
    assert c["created"] == "2023-11-14T22:13:20Z"
    assert (tmp_path / "c.bundle.zip").read_bytes() == (tmp_path / "d.bundle.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "c.bundle.zip") as zf:
        assert {zi.date_time for zi in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_flipped_byte_in_any_member_is_refused(sample_bundles, tmp_path):
    path = sample_bundles["onnx"]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    for name in names:
        def flip(n, data, name=name):
            if n != name:
                return data
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            return bytes(data)
        bad = rewrite(path, tmp_path / f"flip-{name}.zip", flip)
        expected = {"manifest.json": "manifest", "manifest.sig": "signature does not match"}.get(
            name, f"{name}: sha256 mismatch (expected ")
        line = refused(bad, expected, sample_bundles["pub"])
        if name not in ("manifest.json", "manifest.sig"):
            assert "found " in line
    # a byte flipped inside the compressed data fails the archive's own CRC check, naming the member
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        zi = zf.getinfo("model.onnx")
    offset = zi.header_offset + 30 + len(zi.filename) + len(zi.extra) + zi.compress_size // 2
    raw[offset] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(raw))
    refused(tmp_path / "crc.zip", "model.onnx: corrupt data in the archive")


def test_missing_extra_and_tampered_members(sample_bundles, tmp_path):
    path, pub = sample_bundles["tflite"], sample_bundles["pub"]
    refused(rewrite(path, tmp_path / "missing.zip", drop={"runner.py"}), "missing member 'runner.py'")
    refused(rewrite(path, tmp_path / "extra.zip", extra=[("notes.txt", b"hi")]), "unexpected member 'notes.txt'")

    def bump_version(name, data):
        if name != "manifest.json":
            return data
        m = json.loads(data)
        m["version"] = "9.9.9"
        return json.dumps(m, indent=2, sort_keys=True).encode()
    tampered = rewrite(path, tmp_path / "tampered.zip", bump_version)
    refused(tampered, "signature does not match manifest.json", pub)
    unsigned = rewrite(path, tmp_path / "unsigned.zip", drop={"manifest.sig"})
    refused(unsigned, "is not signed", pub)
    assert verify_bundle(unsigned).signed is False

    def repoint(name, data):  # an attacker swaps the model and fixes the hash in an unsigned manifest
        if name == "model.tflite":
            return data + b"\0"
        return data
    refused(rewrite(path, tmp_path / "swap.zip", repoint, drop={"manifest.sig"}), "model.tflite: sha256 mismatch")


def test_wrong_key_is_refused(sample_bundles, tmp_path):
    _, other_pub = new_keypair(tmp_path / "other.key")
    refused(sample_bundles["onnx"], "signature does not match manifest.json for public key SHA256:", other_pub)


@pytest.mark.parametrize("entry, fragment", [
    ("../evil.sh", "climbs out of the bundle"),
    ("/etc/cron.d/evil", "absolute path"),
    ("sub/model.onnx", "is in a folder"),
])
def test_unsafe_names_are_refused(sample_bundles, tmp_path, entry, fragment):
    bad = rewrite(sample_bundles["onnx"], tmp_path / "slip.zip", extra=[(entry, b"#!/bin/sh\n")])
    refused(bad, fragment)
    with pytest.raises(BundleError):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "evil.sh").exists() and not list((tmp_path / "out").iterdir())


def test_links_duplicates_and_bombs_are_refused(sample_bundles, tmp_path):
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    refused(rewrite(sample_bundles["onnx"], tmp_path / "link.zip", extra=[link]), "symbolic link")
    with pytest.warns(UserWarning):
        dup = rewrite(sample_bundles["onnx"], tmp_path / "dup.zip", extra=[("runner.py", b"print('other')\n")])
    refused(dup, "appears twice")
    bomb = rewrite(sample_bundles["onnx"], tmp_path / "bomb.zip", extra=[("zeros.bin", b"\0" * (64 << 20))])
    refused(bomb, "zip bomb")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    refused(tmp_path / "junk.zip", "not a readable zip archive")


def test_runner_runs_in_a_clean_room_with_only_the_runtimes(sample_bundles, tmp_path):
    import ai_edge_litert
    import numpy
    import onnxruntime

    shim = tmp_path / "site"
    shim.mkdir()
    for mod in (numpy, onnxruntime, ai_edge_litert):
        pkg = Path(mod.__file__).parent
        os.symlink(pkg, shim / pkg.name)
        libs = pkg.parent / f"{pkg.name}.libs"
        if libs.exists():
            os.symlink(libs, shim / libs.name)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(shim)}
    probe = subprocess.run([sys.executable, "-S", "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    for target, runtime in (("onnx", "onnxruntime"), ("tflite", "ai-edge-litert")):
        dest = tmp_path / target
        safe_extract(sample_bundles[target], dest)
        result = subprocess.run([sys.executable, "-S", "runner.py", "--runs", "5"], cwd=dest, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] and doc["runtime"] == runtime and doc["latency_ms"]["runs"] == 5
        assert doc["outputs"][0]["shape"] == [1, 10] and 0 <= doc["outputs"][0]["argmax"] < 10


def test_keys(tmp_path):
    key, pub = new_keypair(tmp_path / "k")
    assert os.stat(key).st_mode & 0o777 == 0o600 and pub.name == "k.pub"
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    with pytest.raises(SigningError, match="never overwrites"):
        new_keypair(tmp_path / "k")


def test_export_refuses_bad_names_and_framework_models(sample_bundles, samples, tmp_path):
    src = resolve_source(sample_bundles["onnx_dir"])
    with pytest.raises(BundleError, match="bundle name"):
        build_bundle(src, tmp_path / "x.bundle.zip", name="../etc", version="1")
    with pytest.raises(BundleError, match="optimize the model first"):
        build_bundle(resolve_source(samples["keras_model"]), tmp_path / "k.bundle.zip", name="k", version="1")
    assert not list(tmp_path.iterdir())
