"""`studio diff A B` as a user runs it: the JSON a script reads, the table, and a missing file in one line."""
import json

import numpy as np
import onnx

from tests.conftest import run_cli
from tests.core.look_models import write_models


def test_json_lists_changed_channels_tensors_worst_first_and_the_worst_samples(tmp_path):
    write_models(tmp_path)
    done = run_cli("diff", str(tmp_path / "float.onnx"), str(tmp_path / "pruned.onnx"), "--data",
                   str(tmp_path / "data.npz"), "--samples", "8", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    conv1 = next(o for o in doc["ops"] if o["name"] == "conv1")
    assert conv1["change"] == "changed" and conv1["channels"] == [8, 5] and doc["samples_compared"] == 8
    assert [t["sqnr_db"] for t in doc["tensors"]] == sorted(t["sqnr_db"] for t in doc["tensors"])
    assert len(doc["worst_samples"]) == 8 and not doc["synthetic_inputs"]
    table = run_cli("diff", str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"))
    q = sum(1 for n in onnx.load(tmp_path / "int8.onnx").graph.node if n.op_type == "QuantizeLinear")
    assert table.returncode == 0 and f"{q} QuantizeLinear" in table.stdout and "random inputs" in table.stdout


def test_a_missing_model_is_one_line(tmp_path):
    done = run_cli("diff", str(tmp_path / "nope.onnx"), str(tmp_path / "b.onnx"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"studio diff: error: {tmp_path / 'nope.onnx'}: does not exist"


def test_json_names_each_listed_samples_true_class_and_the_class_names(tmp_path):
    x = write_models(tmp_path)
    y = np.arange(len(x)) % 10
    np.savez(tmp_path / "named.npz", x=x, y=y, labels=np.array([f"digit {k}" for k in range(10)]))
    done = run_cli("diff", str(tmp_path / "float.onnx"), str(tmp_path / "pruned.onnx"), "--data",
                   str(tmp_path / "named.npz"), "--samples", "8", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["class_names"] == [f"digit {k}" for k in range(10)]
    assert [s["label"] for s in doc["worst_samples"]] == [int(y[s["index"]]) for s in doc["worst_samples"]]
