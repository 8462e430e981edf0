"""Quantization that does not fall over: Constant-held weights, a failing pre-processing step, exceptions without a
message, an already-quantized source (in optimize and in a sweep) and what onnx2torch cannot convert."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from studio.core.base.errors import ConversionError, RecipeError, StudioError
from studio.core.base.jobs import run_job
from studio.core.measure.verify import compare
from studio.core.optimize.optimize import optimize
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import Pruning, Quantization, Recipe
from studio.core.sweep.sweep import run_sweep
from studio.core.tensors.shapes import ShapeRequest
from tests.core.prune_fixtures import computed_weight, constant_weights, run


@pytest.fixture
def paddle_style(tmp_path):
    src = tmp_path / "paddle.onnx"
    constant_weights(src)
    data = tmp_path / "data.npz"
    x = np.random.default_rng(0).random((64, 3, 16, 16), dtype=np.float32)
    np.savez(data, x=x)
    return src, data, x


@pytest.mark.parametrize("mode, op", [("dynamic", "DynamicQuantizeLinear"), ("int8", "QuantizeLinear")])
def test_constant_weights_quantize_dynamic_and_static(paddle_style, tmp_path, mode, op):
    src, data, x = paddle_style
    doc = optimize(src, Recipe(quantization=Quantization(mode)), tmp_path / mode, calib=str(data))
    out = tmp_path / mode / "model.onnx"
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert op in ops and "Constant" not in ops
    assert compare(run(src, x[:16]), run(out, x[:16]))["cosine"] > 0.95  # measured here, straight from onnxruntime
    assert any("Constant node(s) holding tensors were turned into initializers" in n for n in doc["notes"])


def test_constant_weights_are_pruned_per_layer_and_the_report_lists_them(paddle_style, tmp_path):
    src, _, _ = paddle_style
    doc = optimize(src, Recipe(pruning=Pruning("unstructured", 0.3)), tmp_path / "out")
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "out" / "model.onnx").graph.initializer}
    for name in ("conv1_weights", "conv2_weights", "fc_weights"):
        assert (weights[name] == 0).sum() == round(0.3 * weights[name].size)
    step = next(s for s in doc["steps"] if s["name"].startswith("unstructured pruning"))
    counted = {layer: round(int((weights[name] == 0).sum()) / weights[name].size, 4)
               for layer, name in (("conv1", "conv1_weights"), ("conv2", "conv2_weights"), ("fc", "fc_weights"))}
    assert step["scope"] == "layer" and {r["layer"]: r["sparsity"] for r in step["layers"]} == counted


def test_failed_pre_processing_falls_back_with_a_readable_note(paddle_style, tmp_path, monkeypatch):
    """onnxruntime's quant_pre_process made to fail with an empty IndexError (a real trigger is model-specific)."""
    import onnxruntime.quantization.shape_inference as shape_inference

    from studio.core.quantize.onnx_quant import normalize, quantize

    def broken(*args, **kwargs):
        raise IndexError()

    monkeypatch.setattr(shape_inference, "quant_pre_process", broken)
    src, _, x = paddle_style
    model = normalize(onnx.load(src), None, [])
    onnx.save(model, tmp_path / "float.onnx")
    notes = []
    quantize(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"), Quantization("dynamic"), x, work=tmp_path,
             notes=notes)
    assert notes == ["onnxruntime pre-processing failed (an index was out of range (no further details were"
                     " given)); quantized without it"]
    assert "DynamicQuantizeLinear" in {n.op_type for n in onnx.load(tmp_path / "q.onnx").graph.node}


def raise_silently(report=None):
    raise IndexError()


def test_an_exception_without_a_message_gives_a_readable_line():
    with pytest.raises(StudioError) as err:
        run_job(raise_silently, what="a test job")
    line = str(err.value)
    assert "a test job failed unexpectedly: an index was out of range" in line and "IndexError" not in line


@pytest.fixture
def quantized_source(paddle_style, tmp_path):
    src, data, x = paddle_style
    optimize(src, Recipe(quantization=Quantization("dynamic")), tmp_path / "q")
    return tmp_path / "q" / "model.onnx", data, x


def test_optimize_passes_a_quantized_source_through_and_refuses_to_quantize_it(quantized_source, tmp_path):
    src, _, x = quantized_source
    with pytest.raises(RecipeError, match="already quantized"):
        optimize(src, Recipe(quantization=Quantization("dynamic")), tmp_path / "again")
    assert not (tmp_path / "again" / "model.onnx").exists()
    optimize(src, Recipe(), tmp_path / "float")
    np.testing.assert_allclose(run(tmp_path / "float" / "model.onnx", x[:4])[0], run(src, x[:4])[0], atol=1e-5)


def test_sweep_marks_quantizing_a_quantized_source_failed_with_the_reason(quantized_source, tmp_path):
    src, data, _ = quantized_source
    doc = run_sweep(src, Grid(targets=("onnx",), quant=("none", "dynamic", "int8")), str(data), tmp_path / "run")
    rows = {c["id"]: c for c in doc["candidates"]}
    assert rows["onnx-fp32-p0.00"]["status"] == "ok"
    for cid in ("onnx-dynamic-p0.00", "onnx-int8-p0.00"):
        assert rows[cid]["status"] == "failed" and "already quantized" in rows[cid]["error"]
        assert rows[cid]["pareto"] is False and doc["best"] != cid


def test_onnx_to_tflite_takes_constant_weights_and_names_what_onnx2torch_cannot(paddle_style, tmp_path):
    src, _, _ = paddle_style
    doc = optimize(src, Recipe(target="tflite"), tmp_path / "ok", shapes=ShapeRequest.of((1, 3, 16, 16)))
    assert doc["conversion"]["check"]["passed"]  # 'conv1_weights' alone, before
    computed = tmp_path / "computed.onnx"
    computed_weight(computed)
    with pytest.raises(ConversionError) as err:
        optimize(computed, Recipe(target="tflite"), tmp_path / "no")
    assert "Conv node 'conv1' needs 'conv1_weights' as a stored weight (an initializer), but the Identity node" \
           " 'weights_copy' computes it" in str(err.value)
