"""`studio sweep` from the terminal: JSON lines, files, resume, refusals."""
import json

from tests.conftest import run_cli


def test_sweep_streams_json_and_resumes(shared_models, samples, tmp_path):
    args = ("sweep", str(shared_models / "onnx" / "mnist.onnx"), "--data", samples["dataset"], "--quant",
            "none,int8", "--target", "onnx", "-o", str(tmp_path / "run"))
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(c["id"] for c in lines) == ["onnx-fp32-p0.00", "onnx-int8-p0.00"]
    assert all(c["status"] == "ok" and c["latency_ms_median"] > 0 for c in lines)
    assert all(len(c["latency_round_medians_ms"]) == 5 and isinstance(c["noisy"], bool) for c in lines)
    for name in ("results.json", "results.csv", "tradeoff.png", "journal.jsonl", "sweep.json"):
        assert (tmp_path / "run" / name).is_file()
    again = run_cli(*args)
    assert again.returncode == 0 and "onnx-int8-p0.00" in again.stdout and "original model: 99.2%" in again.stdout
    changed = run_cli(*args[:-1], str(tmp_path / "run"), "--quant", "fp16")
    assert changed.returncode == 1 and "holds a different sweep (grid changed)" in changed.stderr


def test_bad_grid_file(tmp_path, shared_models, samples):
    grid = tmp_path / "g.toml"
    grid.write_text("targets = ['onnx']\nquant = ['int3']\n")
    result = run_cli("sweep", str(shared_models / "onnx" / "mnist.onnx"), "--data", samples["dataset"], "--grid",
                     str(grid), "-o", str(tmp_path / "run"))
    assert result.returncode == 1 and str(grid) in result.stderr and "unknown quantization 'int3'" in result.stderr
