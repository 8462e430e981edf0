"""`studio profile` as a user runs it: the JSON a script reads, a sweep candidate profiled on the sample its latency
was timed on, the table, a TFLite model's LiteRT profile with the operator XNNPACK left out, and a missing file in one
line."""
import json

import onnx
import pytest

from tests.conftest import run_cli
from tests.core.look_models import convstack, write_dynamic_run
from tests.core.tflite_models import ARGMAX, CONVS, convstack_tflite

KEYS = {"model", "runtime", "providers", "optimized", "inputs", "synthetic", "runs", "warmup", "threads", "op_ms",
        "latency_ms", "latency_median_ms", "node_count", "op_types", "nodes", "fallback", "coverage", "device"}


@pytest.fixture(scope="module")
def dynamic_run(tmp_path_factory):
    return write_dynamic_run(tmp_path_factory.mktemp("profile-run"))


def test_json_has_the_report_keys_and_the_top_nodes(tmp_path):
    onnx.save(convstack(), tmp_path / "m.onnx")
    done = run_cli("profile", str(tmp_path / "m.onnx"), "--json", "--top", "2", "--runs", "5")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == KEYS and len(doc["nodes"]) == 2 and doc["runs"] == 5 and doc["device"] is None
    assert all(set(r) == {"op", "nodes", "ms", "share"} for r in doc["op_types"])
    assert all(set(r) == {"name", "op", "provider", "ms", "share"} for r in doc["nodes"])
    assert doc["inputs"] == [{"name": "x", "shape": [1, 3, 64, 64]}] and 0.7 <= doc["coverage"] <= 1.3


def test_a_candidate_runs_on_the_sample_its_latency_was_timed_on(dynamic_run):
    for typed in (dynamic_run / "onnx-fp32-p0.00", dynamic_run / "candidates" / "onnx-fp32-p0.00"):
        done = run_cli("profile", str(typed), "--json", "--runs", "3")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["inputs"] == [{"name": "x", "shape": [1, 3, 24, 40]}] and not doc["synthetic"]
        assert doc["model"] == str(dynamic_run / "candidates" / "onnx-fp32-p0.00" / "model.onnx")


def test_the_table_lists_operator_types_then_nodes(tmp_path):
    onnx.save(convstack(), tmp_path / "m.onnx")
    done = run_cli("profile", str(tmp_path / "m.onnx"), "--runs", "3", "--top", "1", "--no-graph-optimizations")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'm.onnx'}: onnxruntime ")
    assert "x [1, 3, 64, 64] (random inputs)" in lines[0]
    assert lines[2] == "by operator type:" and lines[3].split()[:3] == ["Conv", "3", "nodes"]
    assert lines[-2] == "slowest nodes (1 of 9):" and lines[-1].split()[1] == "Conv"


def test_a_missing_model_is_one_line(tmp_path):
    done = run_cli("profile", str(tmp_path / "nope.onnx"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [f"studio profile: error: {tmp_path / 'nope.onnx'}: not found (expected a model"
                                        " file, an optimize output folder or RUN/CANDIDATE_ID)"]


def test_a_tflite_model_is_profiled_by_litert_and_names_what_ran_outside_xnnpack(tmp_path):
    model = convstack_tflite(tmp_path / "m.tflite")
    done = run_cli("profile", str(model), "--json", "--runs", "5")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == KEYS and doc["runtime"].startswith("ai-edge-litert ") and doc["node_count"] == len(CONVS) + 1
    assert doc["fallback"][0]["name"] == ARGMAX and len(doc["fallback"]) == 1 and 0.7 <= doc["coverage"] <= 1.3
    text = run_cli("profile", str(model), "--runs", "3")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"{model}: ai-edge-litert ") and " on XNNPACK, TFLite kernels, image [1, 48, 48, 3]" \
        in lines[0]
    assert lines[-1] == f"ran outside XNNPACK: {ARGMAX} (ARG_MAX, TFLite kernels)"
