"""`studio keys new`, `studio export` and `studio verify` from the terminal."""
import json
import zipfile

from tests.conftest import run_cli


def test_keys_export_verify(sample_bundles, samples, tmp_path):
    assert run_cli("keys", "new", str(tmp_path / "k")).returncode == 0
    out = tmp_path / "digits.bundle.zip"
    result = run_cli("export", str(sample_bundles["onnx_dir"]), "-o", str(out), "--version", "1.3",
                     "--labels", samples["labels"], "--sign", str(tmp_path / "k"), "--sample", samples["dataset"])
    assert result.returncode == 0, result.stderr
    assert "digits-1.3-" in result.stdout and "signed by SHA256:" in result.stdout
    ok = run_cli("verify", str(out), "--pubkey", str(tmp_path / "k.pub"), "--json")
    doc = json.loads(ok.stdout)
    assert ok.returncode == 0 and doc["signature_checked"] and doc["name"] == "digits"
    with zipfile.ZipFile(out) as zf:
        assert "sample.npz" in zf.namelist()
    bad = tmp_path / "bad.bundle.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        for zi in zin.infolist():
            data = zin.read(zi)
            zout.writestr(zi, data[:-1] + bytes([data[-1] ^ 1]) if zi.filename == "model.onnx" else data)
    result = run_cli("verify", str(bad))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "model.onnx: sha256 mismatch (expected" in result.stderr and "found" in result.stderr
