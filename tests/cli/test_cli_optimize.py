"""`studio optimize` from the terminal: files written, report, progress, clear refusals."""
import json

import numpy as np
import onnx
import onnxruntime as ort

from tests.conftest import run_cli
from tests.core.onnx_fixtures import microsoft_opset


def test_optimize_writes_model_and_report(shared_models, samples, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('schema_version = 1\ntarget = "onnx"\n[quantization]\nmode = "int8"\nper_channel = false\n')
    result = run_cli("optimize", str(shared_models / "onnx" / "mnist.onnx"), "--recipe", str(recipe),
                     "--calib", samples["dataset"], "--calib-method", "entropy", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "ONNX -> ONNX" in result.stdout
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["recipe"]["quantization"] == {"mode": "int8", "calibration": "entropy", "per_channel": False,
                                             "io": "int8", "calib_samples": 100}
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx", "report.json"]


def test_optimize_refusals_are_one_line(shared_models, tmp_path):
    result = run_cli("optimize", str(shared_models / "tflite" / "hello_world_float.tflite"), "--target", "tflite",
                     "--prune", "structured", "--prune-ratio", "0.5", "-o", str(tmp_path / "o"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "hello_world_float.tflite" in result.stderr and "cannot be applied to a TFLite file" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("target = 'onnx'\n[pruning]\nmethod = 'structured'\nratio = 2\n")
    result = run_cli("optimize", str(shared_models / "onnx" / "mnist.onnx"), "--recipe", str(bad), "-o",
                     str(tmp_path / "o"))
    assert result.returncode == 1 and str(bad) in result.stderr and "below 1" in result.stderr
    assert not (tmp_path / "o" / "model.onnx").exists()


def test_model_with_a_runtime_only_opset_domain_optimizes(tmp_path):
    """An onnxruntime-optimized model imports the com.microsoft opset, which onnx's IR table does not know."""
    src = tmp_path / "fused.onnx"
    onnx.save(microsoft_opset(), str(src))
    result = run_cli("optimize", str(src), "--quant", "dynamic", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)
    want = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "out" / "model.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05)  # int8 weights: close, not equal
