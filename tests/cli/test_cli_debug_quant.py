"""`studio debug-quant RUN/ID` as a user runs it: the JSON shape, worst first, and a bad candidate in one line."""
import json

from tests.conftest import run_cli


def test_json_lists_the_top_layers_worst_first(int8_sweep):
    done = run_cli("debug-quant", str(int8_sweep / "onnx-int8-p0.00"), "--json", "--top", "3")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["candidate"] == "onnx-int8-p0.00" and doc["samples"] == 64 and doc["metric"] == "sqnr_db"
    assert len(doc["layers"]) == 3
    assert all(set(r) == {"tensor", "node", "op", "sqnr_db", "cosine", "relative_error"} for r in doc["layers"])
    sqnr = [r["sqnr_db"] for r in doc["layers"]]
    assert sqnr == sorted(sqnr) and all(0 < r["cosine"] <= 1 and r["relative_error"] > 0 for r in doc["layers"])


def test_the_table_names_the_worst_layer_first(int8_sweep):
    doc = json.loads(run_cli("debug-quant", str(int8_sweep / "onnx-int8-p0.00"), "--json").stdout)
    done = run_cli("debug-quant", str(int8_sweep / "onnx-int8-p0.00"), "--top", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].split()[0] == doc["layers"][0]["tensor"] and len(lines) == 4


def test_a_float_candidate_is_refused_in_one_line(int8_sweep):
    done = run_cli("debug-quant", str(int8_sweep / "onnx-fp32-p0.00"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"studio debug-quant: error: {int8_sweep / 'onnx-fp32-p0.00'}: onnx-fp32-p0.00 is not quantized: the"
        " debugger compares an int8 (static) candidate with its float model"]


def test_keep_float_adds_the_measured_candidate_to_the_run(int8_sweep, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(int8_sweep, run)  # this test adds a candidate: to its own copy of the run
    done = run_cli("debug-quant", str(run / "onnx-int8-p0.00"), "--json", "--keep-float", "2")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    added = doc["added"]
    assert added["id"] == "onnx-int8-p0.00-float2" and added["float_layers"] == [r["node"] for r in doc["layers"][:2]]
    results = json.loads((run / "results.json").read_text())
    assert added["id"] in [c["id"] for c in results["candidates"]] and not results["interrupted"]
    assert (run / "candidates" / added["id"] / "model.onnx").is_file()


def test_json_of_a_tflite_candidate_and_keep_float(tflite_int8_sweep, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tflite_int8_sweep, run)  # this test adds a candidate: to its own copy of the run
    done = run_cli("debug-quant", str(run / "tflite-int8-p0.00"), "--json", "--samples", "4", "--keep-float", "1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["candidate"] == "tflite-int8-p0.00" and doc["samples"] == 4 and doc["metric"] == "sqnr_db"
    sqnr = [r["sqnr_db"] for r in doc["layers"]]
    assert sqnr == sorted(sqnr) and {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in doc["layers"]}
    assert doc["added"]["id"] == "tflite-int8-p0.00-float1"
    assert doc["added"]["float_layers"] == [next(r["node"] for r in doc["layers"] if r["node"])]
    results = json.loads((run / "results.json").read_text())
    assert doc["added"]["id"] in [c["id"] for c in results["candidates"]]
    assert (run / "candidates" / doc["added"]["id"] / "model.tflite").is_file()
