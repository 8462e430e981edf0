"""`diff` of a float model and its int8 QDQ model, and of a model and its channel-pruned version: the inserted Q/DQ
nodes and changed channels counted with onnx's own API, and per-tensor SQNR equal to a direct onnxruntime run."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper as oh

from studio.core.look.diff import DiffOptions, diff_models
from studio.core.look.match import Change
from tests.core.look_models import convnet, write_models

QDQ = ("QuantizeLinear", "DequantizeLinear")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    return root, write_models(root)


def _run(path, outputs, x):
    model = onnx.load(path)
    del model.graph.output[:]
    model.graph.output.extend(oh.make_empty_tensor_value_info(n) for n in outputs)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip(outputs, session.run(None, {"x": x}), strict=True))


def test_a_float_and_its_int8_model_differ_by_the_inserted_qdq_pairs_and_each_layer_sqnr(models):
    root, x = models
    d = diff_models(root / "float.onnx", root / "int8.onnx", DiffOptions(data=str(root / "data.npz")))
    int8 = onnx.load(root / "int8.onnx")
    truth = {op: sum(1 for n in int8.graph.node if n.op_type == op) for op in QDQ}
    assert d.inserted() == {op: n for op, n in truth.items() if n} and truth["QuantizeLinear"] > 0
    changed = {o.name: o for o in d.ops if o.change == Change.CHANGED}
    assert {"conv1", "conv2", "fc"} <= set(changed)
    fused = {n.name for n in convnet().graph.node} - {n.name for n in int8.graph.node}  # the quantizer folds Relu
    assert {o.name for o in d.ops if o.change == Change.REMOVED} == fused
    assert not [o for o in d.ops if o.change == Change.ADDED]
    by_tensor = {t.a: t for t in d.tensors}
    assert {"c1", "c2", "logits"} <= set(by_tensor) and d.sample_count == len(x)
    made_by = {o: n.op_type for n in int8.graph.node for o in n.output}
    for name, t in by_tensor.items():  # the QDQ model's value as the next layer reads it
        assert made_by[t.b] in ("DequantizeLinear", t.op), name  # dequantized, or the matched node's own output
        f = _run(str(root / "float.onnx"), [name], x)[name].astype(np.float64).ravel()
        q = _run(str(root / "int8.onnx"), [t.b], x)[t.b].astype(np.float64).ravel()
        assert t.sqnr_db == pytest.approx(10 * np.log10(np.sum(f ** 2) / np.sum((f - q) ** 2)), abs=0.01), name
        assert t.cosine == pytest.approx(f @ q / np.linalg.norm(f) / np.linalg.norm(q), abs=1e-6)
    assert [t.sqnr_db for t in d.tensors] == sorted(t.sqnr_db for t in d.tensors)


def test_a_pruned_model_lists_its_changed_channel_counts_and_compares_what_keeps_its_shape(models):
    root, x = models
    d = diff_models(root / "float.onnx", root / "pruned.onnx", DiffOptions(data=str(root / "data.npz")))
    ops = {o.name: o for o in d.ops}
    assert ops["conv1"].change == Change.CHANGED and ops["conv1"].channels == (8, 5)
    assert "output 0 ['batch', 8, 16, 16] float32 -> ['batch', 5, 16, 16] float32" in ops["conv1"].details
    assert any("[12, 8, 3, 3]" in t and "[12, 5, 3, 3]" in t for t in ops["conv2"].details)
    assert ops["fc"].change == Change.SAME and d.inserted() == {}
    assert {t.a for t in d.tensors} == {"c2", "r2", "g", "f", "logits"}  # c1 and r1 lost channels: no pair
    f, p = (_run(str(root / m), ["logits"], x)["logits"] for m in ("float.onnx", "pruned.onnx"))
    cos = (f * p).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(p, axis=1)
    disagree = [int(i) for i in np.flatnonzero(f.argmax(1) != p.argmax(1))]
    got = [s.index for s in d.samples]
    assert got[:len(disagree)] == disagree and len(got) == len(x)
    rest = got[len(disagree):]
    assert [round(float(cos[i]), 9) for i in rest] == sorted(round(float(cos[i]), 9) for i in rest)


def test_tflite_float_and_int8_models_show_the_dtype_changes(shared_models):
    a, b = shared_models / "tflite" / "hello_world_float.tflite", shared_models / "tflite" / "hello_world_int8.tflite"
    d = diff_models(a, b, DiffOptions(numeric=False))
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(b))
    ops = [o for o in it._get_ops_details() if o["op_name"] != "DELEGATE"]
    assert [o.op for o in d.ops if o.b is not None] == [o["op_name"] for o in ops]
    assert all(o.change == Change.CHANGED and any("float32 ->" in t and "int8" in t for t in o.details)
               for o in d.ops if o.op == "FULLY_CONNECTED")
