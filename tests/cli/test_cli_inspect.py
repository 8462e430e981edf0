"""The `studio` command as a user runs it: exit codes, one-line errors, JSON, and a fast start."""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli


def one_line_error(result, path):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "Traceback" not in result.stderr
    return lines[0]


def test_bad_inputs_exit_1_with_one_clear_line(tmp_path, shared_models):
    cases = {}
    cases["missing"] = (tmp_path / "missing.onnx", "file not found")
    (tmp_path / "empty.onnx").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.onnx", "empty")
    data = (shared_models / "onnx" / "mnist.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 3])
    cases["truncated"] = (tmp_path / "truncated.onnx", "not a valid ONNX model")
    (tmp_path / "random.tflite").write_bytes(b"\x00\x01" + os.urandom(5000))  # a first byte no format starts with
    cases["random"] = (tmp_path / "random.tflite", "not a TFLite flatbuffer")
    shutil.copy(shared_models / "onnx" / "mnist.onnx", tmp_path / "model.txt")
    cases["extension"] = (tmp_path / "model.txt", "unsupported file extension '.txt'")
    cases["ir1"] = (shared_models / "onnx" / "super_resolution.onnx", "IR version 1 is too old")
    for name, (path, fragment) in cases.items():
        line = one_line_error(run_cli("inspect", str(path), timeout=120), path)
        assert fragment in line, (name, line)


def test_inspect_text_and_json(shared_models):
    path = shared_models / "tflite" / "hello_world_int8.tflite"
    text = run_cli("inspect", str(path))
    assert text.returncode == 0 and "scale=" in text.stdout and "FULLY_CONNECTED" in text.stdout
    doc = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert doc["format"] == "tflite" and doc["inputs"][0]["quantization"]["zero_point"] == [-128]
    assert {"format", "inputs", "outputs", "params", "size_bytes", "ops", "problems"} <= set(doc)


def test_unrunnable_model_is_inspected_with_its_problem(shared_models):
    result = run_cli("inspect", str(shared_models / "tflite" / "person_detect.tflite"))
    assert result.returncode == 0 and "ERROR: ai-edge-litert" in result.stdout


def test_help_and_inspect_never_import_torch_or_tensorflow(tmp_path, shared_models):
    """A stub torch/tensorflow first on the path records any import, in this process and in every worker."""
    record = tmp_path / "imported.txt"
    for name in ("torch", "tensorflow", "keras"):
        (tmp_path / "block" / name).mkdir(parents=True)
        (tmp_path / "block" / name / "__init__.py").write_text(
            f"import os\nopen(os.environ['BLOCK_RECORD'], 'a').write('{name}\\n')\nraise ImportError('blocked')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'block'}{os.pathsep}{ROOT}", "BLOCK_RECORD": str(record)}
    assert run_cli("--help", env=env).returncode == 0
    for model in ("onnx/mnist.onnx", "tflite/hello_world_int8.tflite", "tflite/selfie_segmentation.tflite"):
        result = run_cli("inspect", str(shared_models / model), env=env)
        assert result.returncode == 0, result.stderr
    assert not record.exists(), record.read_text()


def test_importtime_of_help_has_no_framework():
    import subprocess

    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "studio", "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "tensorflow", "keras", "onnx", "PySide6"}


def test_console_script_equals_python_m():
    script = Path(sys.executable).parent / "studio"
    if not script.exists():
        pytest.skip("the studio console script is not installed in this environment")
    import subprocess

    a = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    b = run_cli("--version")
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and "studio" in a.stdout


def test_samples_json(samples):
    doc = json.loads(run_cli("samples", "--json").stdout)
    assert doc["torch_model"].endswith(".pt2") and doc["keras_model"].endswith(".keras")
    assert doc["torch_accuracy"] > 95 and doc["keras_accuracy"] > 95
    assert Path(doc["dataset"]).is_file() and Path(doc["train_dataset"]).is_file()


def test_inspect_a_state_dict_of_your_own_class_needs_trust_code(tmp_path):
    import torch

    (tmp_path / "net.py").write_text("import torch\n\n\nclass Tiny(torch.nn.Module):\n"
                                     "    def __init__(self, width=3):\n        super().__init__()\n"
                                     "        self.fc = torch.nn.Linear(4, width)\n\n"
                                     "    def forward(self, x):\n        return self.fc(x)\n", encoding="utf-8")
    torch.save({"fc.weight": torch.ones(5, 4), "fc.bias": torch.zeros(5)}, tmp_path / "weights.pt")
    arch = ["--arch", f"{tmp_path / 'net.py'}:Tiny", "--arch-args", '{"width": 5}']
    refused = run_cli("inspect", str(tmp_path / "weights.pt"), *arch, timeout=120)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--trust-code" in refused.stderr and "Traceback" not in refused.stderr
    bad_args = run_cli("inspect", str(tmp_path / "weights.pt"), *arch[:2], "--arch-args", "[5]", timeout=120)
    assert bad_args.returncode == 1 and "must be a JSON object" in bad_args.stderr
    ok = run_cli("inspect", str(tmp_path / "weights.pt"), *arch, "--trust-code", "--input-shape", "2,4", "--json",
                 timeout=120)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["outputs"][0]["shape"] == [2, 5] and doc["params"] == 25
