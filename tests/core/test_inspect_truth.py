"""Inspect tells the truth about third-party ONNX files: weights wherever they sit, operators inside subgraphs,
non-tensor outputs in words, runtime-only opset domains, and names that are not valid UTF-8."""
import json
import math

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.inspect.inspector import inspect_model
from studio.core.inspect.modelinfo import TensorKind, summary_lines
from tests.conftest import run_cli
from tests.core import onnx_fixtures as fx


def _save(model, path):
    onnx.save(model, str(path))
    return path


def test_constant_node_weights_of_a_paddle_export_are_parameters(tmp_path):
    model = fx.paddle_style()
    info = inspect_model(_save(model, tmp_path / "det.onnx"))
    assert info.params == fx.onnx_weight_count(model) == 8 * 3 * 3 * 3 + 8 + 8 * 10 + 10
    assert info.weight_dtypes == {"float32": info.params}
    assert info.inputs[0].dynamic_dims == [(0, "batch"), (2, "h"), (3, "w")]
    assert info.macs is None and info.runnable  # dynamic height and width: no MAC count, but onnxruntime runs it
    conv = next(layer for layer in info.layers if layer.name == "conv2d_0")
    assert conv.params == 8 * 3 * 3 * 3 + 8


def test_macs_see_constant_node_weights(tmp_path):
    h = w = 32
    info = inspect_model(_save(fx.paddle_style(h, w), tmp_path / "det.onnx"))
    conv_out, kernel = 8 * (h - 2) * (w - 2), 3 * 3 * 3  # 3x3 kernel, no padding
    assert info.macs == conv_out * kernel + 8 * 10


def test_if_and_loop_subgraphs_count_their_weights_and_operators(tmp_path):
    model = fx.if_and_loop()
    path = _save(model, tmp_path / "rnn.onnx")
    session = ort.InferenceSession(str(path))  # the fixture is a real model: onnxruntime runs both branches
    x = np.ones((1, 4), np.float32)
    for cond in (True, False):
        session.run(None, {"x": x, "cond": np.array(cond)})
    info = inspect_model(path)
    assert info.params == fx.onnx_weight_count(model) == 4 * 4 + 4 * 4 + 4 + 4
    assert info.ops["MatMul"] == 2 and info.ops["Add"] == 1 and info.ops["If"] == info.ops["Loop"] == 1
    assert sum(info.ops.values()) == 8 and info.details["subgraph_ops"] == 5
    assert "8 in total (5 inside If/Loop/Scan subgraphs)" in "\n".join(summary_lines(info))
    names = {layer.name for layer in info.layers}
    assert {"gate/then_branch/then_matmul", "gate/else_branch/else_matmul", "steps/body/Add_0"} <= names
    assert info.macs is None  # the work inside a branch or a loop is not known before it runs
    assert info.runnable


def test_zipmap_output_is_described_in_words(tmp_path):
    path = _save(fx.zipmap_classifier(), tmp_path / "clf.onnx")
    session = ort.InferenceSession(str(path))
    assert session.get_outputs()[1].type == "seq(map(int64,tensor(float)))"
    _label, probs = session.run(None, {"x": np.ones((1, 2), np.float32)})
    assert isinstance(probs, list) and isinstance(probs[0], dict)
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "probabilities" in x)
    assert line.split() == ["probabilities", "sequence", "of", "maps", "from", "int64", "to", "float32"]
    assert "undefined" not in result.stdout and "problems    none found" in result.stdout
    doc = json.loads(run_cli("inspect", str(path), "--json").stdout)
    out = doc["outputs"][1]
    assert (out["kind"], out["description"], out["dtype"]) == ("sequence", "sequence of maps from int64 to float32",
                                                               "float32")
    info = inspect_model(path)
    assert info.outputs[1].kind == TensorKind.SEQUENCE and info.outputs[0].kind == TensorKind.TENSOR


def test_runtime_only_opset_domain_is_fine_when_onnxruntime_loads_it(tmp_path):
    model = fx.microsoft_opset()
    path = _save(model, tmp_path / "fused.onnx")
    ort.InferenceSession(str(path))
    info = inspect_model(path)
    assert info.problems == [] and info.ops["com.microsoft::Gelu"] == 1
    assert info.details["opset_imports"] == {"ai.onnx": 17, "com.microsoft": 1}
    assert info.params == fx.onnx_weight_count(model) == 24


def test_names_that_are_not_utf8_are_shown_escaped(tmp_path):
    model = fx.paddle_style()
    for node in model.graph.node:
        node.input[:] = ["image_in" if x == "x" else x for x in node.input]
    model.graph.input[0].name = "image_in"
    data = fx.with_name_bytes(model, "image_in", b"image\xff\xfe\xfd")
    data = data.replace(b"conv2d_0", b"conv2d\xc3(").replace(b"conv.w", b"conv\xffw")
    path = tmp_path / "names.onnx"
    path.write_bytes(data)
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert r"image\xff\xfe\xfd" in result.stdout
    assert "onnxruntime loads the model, but its Python API cannot read a tensor name" in result.stdout
    doc = json.loads(run_cli("inspect", str(path), "--json").stdout)
    assert doc["inputs"][0]["name"] == r"image\xff\xfe\xfd"
    assert doc["params"] == fx.onnx_weight_count(model)
    conv = next(layer for layer in doc["layers"] if layer["name"] == r"conv2d\xc3(")
    assert conv["params"] == math.prod((8, 3, 3, 3)) + 8  # the escaped weight name still joins its Constant


def test_tflite_names_that_are_not_utf8_are_shown_escaped(shared_models, tmp_path):
    data = (shared_models / "tflite" / "hello_world_int8.tflite").read_bytes()
    name = b"serving_default_dense_input:0"
    assert data.count(name) == 1
    path = tmp_path / "names.tflite"
    path.write_bytes(data.replace(name, name[:21] + b"\xff\xfe\xfd" + name[24:]))  # same length
    result = run_cli("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert r"serving_default_dense\xff\xfe\xfdput:0" in result.stdout
    assert "ai-edge-litert loads the model, but its Python API cannot read a tensor name" in result.stdout
    assert json.loads(run_cli("inspect", str(path), "--json").stdout)["params"] == inspect_model(
        shared_models / "tflite" / "hello_world_int8.tflite").params
