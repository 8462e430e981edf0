"""The optimization engine on real models and real MNIST: accuracy kept, conversions agree, pruning shrinks."""
import json

import numpy as np
import pytest

from studio.core.base.errors import ConversionError, RecipeError
from studio.core.base.jobs import run_job
from studio.core.inspect.inspector import inspect_model
from studio.core.measure.evaluate import evaluate
from studio.core.measure.verify import check_float
from studio.core.optimize.optimize import optimize
from studio.core.recipe.recipe import Preprocess, Pruning, Quantization, Recipe
from tests.core.test_data import write_digit_folder


def accuracy(path, dataset, preprocess=Preprocess(), reference=None):
    result = run_job(evaluate, str(path), dataset, preprocess, reference)
    return result


def torch_outputs(path, dataset, report=None):
    """The PyTorch sample's own outputs on the dataset (runs in a torch worker)."""
    from studio.core.convert.torch_route import forward, load_module
    from studio.core.data.datasets import load_dataset
    from studio.core.data.feeding import fit
    from studio.core.tensors.spec import TensorInfo

    loaded = load_module(path, "torch_export", None, False)
    samples = fit(load_dataset(dataset), [TensorInfo("input", list(loaded.shape), "float32")]).samples
    return forward(loaded.module, samples, loaded.batch)


def test_mnist_onnx_static_int8_keeps_top1_within_one_point(shared_models, samples, tmp_path):
    src = shared_models / "onnx" / "mnist.onnx"
    doc = optimize(src, Recipe(quantization=Quantization("int8")), tmp_path, calib=samples["dataset"])
    out = tmp_path / "model.onnx"
    assert json.loads((tmp_path / "report.json").read_text()) == doc
    fp32 = accuracy(src, samples["dataset"])["top1"]
    int8 = accuracy(out, samples["dataset"])["top1"]
    assert fp32 > 98 and abs(fp32 - int8) <= 1.0
    info = inspect_model(out)
    assert info.ops.get("QuantizeLinear", 0) > 0 and info.details["opset"] >= 13  # opset 8 raised for QDQ
    assert doc["output"]["size_bytes"] < doc["source"]["size_bytes"]
    assert doc["calibration"] == {"source": samples["dataset"], "samples": 100}
    for key in ("steps", "warnings", "time_s", "versions", "params_before", "params_after", "macs_before"):
        assert key in doc
    assert doc["versions"]["onnxruntime"] and doc["conversion"]["check"]["passed"]


def test_old_opset_dynamic_and_fp16(shared_models, samples, tmp_path):
    src = shared_models / "onnx" / "mnist.onnx"
    fp32 = accuracy(src, samples["dataset"])["top1"]
    for mode in ("dynamic", "fp16"):
        optimize(src, Recipe(quantization=Quantization(mode)), tmp_path / mode)
        info = inspect_model(tmp_path / mode / "model.onnx")
        assert info.runnable
        assert abs(accuracy(tmp_path / mode / "model.onnx", samples["dataset"])["top1"] - fp32) <= 1.0
    assert "float16" in inspect_model(tmp_path / "fp16" / "model.onnx").weight_dtypes


def test_calibration_from_an_image_folder_and_without_data(shared_models, samples, tmp_path):
    folder = write_digit_folder(tmp_path / "digits", samples, per_class=5)
    src = shared_models / "onnx" / "mnist.onnx"
    doc = optimize(src, Recipe(quantization=Quantization("int8", calibration="percentile")), tmp_path / "a",
                   calib=str(folder))
    assert doc["calibration"]["samples"] == 50 and doc["warnings"] == []
    assert accuracy(tmp_path / "a" / "model.onnx", samples["dataset"])["top1"] > 97
    doc = optimize(src, Recipe(quantization=Quantization("int8")), tmp_path / "b")
    assert doc["calibration"]["source"] == "synthetic"
    assert any("synthetic random inputs" in w for w in doc["warnings"])


def test_keras_sample_to_full_int8_tflite_within_two_points(samples, tmp_path):
    doc = optimize(samples["keras_model"], Recipe(target="tflite", quantization=Quantization("int8", io="int8")),
                   tmp_path, calib=samples["train_dataset"])
    out = tmp_path / "model.tflite"
    info = inspect_model(out)
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert info.inputs[0].quantization.scale[0] > 0 and info.weight_dtypes.get("float32", 0) == 0
    int8 = accuracy(out, samples["dataset"])["top1"]
    assert abs(int8 - samples["keras_accuracy"]) <= 2.0
    assert doc["conversion"]["route"] == "Keras -> TFLite" and doc["conversion"]["check"]["passed"]


def test_pytorch_sample_converts_to_onnx_and_tflite_that_agree_with_it(samples, tmp_path):
    ref = run_job(torch_outputs, samples["torch_model"], samples["dataset"])
    for target in ("onnx", "tflite"):
        doc = optimize(samples["torch_model"], Recipe(target=target), tmp_path / target)
        assert doc["conversion"]["check"]["relative_error"] < 1e-4
        result = accuracy(tmp_path / target / f"model.{target}", samples["dataset"], reference=ref)
        assert result["agreement"]["top1_agreement"] == 100.0
        assert result["agreement"]["relative_error"] < 1e-4
        assert result["top1"] == pytest.approx(samples["torch_accuracy"], abs=0.01)


def test_structured_pruning_halves_macs_runs_in_both_targets_and_finetune_recovers(samples, tmp_path):
    plain = optimize(samples["torch_model"], Recipe(pruning=Pruning("structured", 0.5)), tmp_path / "onnx",
                     calib=samples["dataset"], allow_degraded=True)  # without recovery it is broken, on purpose
    assert plain["fidelity"]["degraded"].startswith("output 'linear_1': top-1 agreement")
    assert plain["output"]["macs"] <= 0.5 * plain["macs_before"]
    assert plain["params_after"] < 0.5 * plain["params_before"]
    assert plain["output"]["size_bytes"] < 0.5 * plain["source"]["size_bytes"]
    assert any("fine-tuning" in w for w in plain["warnings"])
    layers = plain["steps"][0]["layers"]
    assert layers and all(layer["channels_after"] < layer["channels_before"] for layer in layers)
    tuned = optimize(samples["torch_model"], Recipe(target="tflite", pruning=Pruning("structured", 0.5,
                                                                                  finetune_epochs=2)),
                     tmp_path / "tflite", calib=samples["dataset"], finetune=samples["train_dataset"])
    assert tuned["output"]["macs"] <= 0.5 * tuned["macs_before"]
    acc_plain = accuracy(tmp_path / "onnx" / "model.onnx", samples["dataset"])["top1"]
    acc_tuned = accuracy(tmp_path / "tflite" / "model.tflite", samples["dataset"])["top1"]
    assert acc_tuned > 90 and acc_tuned > acc_plain  # recovery training earns back what pruning lost
    assert any(s["name"].startswith("fine-tuning") for s in tuned["steps"])


def test_unstructured_pruning_is_honest_for_onnx_and_tflite(shared_models, tmp_path):
    for src, target in ((shared_models / "onnx" / "mnist.onnx", "onnx"),
                        (shared_models / "tflite" / "trained_lstm.tflite", "tflite")):
        doc = optimize(src, Recipe(target=target, pruning=Pruning("unstructured", 0.5)), tmp_path / target,
                       allow_degraded=True)
        step = next(s for s in doc["steps"] if s["name"].startswith("unstructured"))
        assert 0.49 < step["sparsity"] < 0.51
        assert doc["output"]["compressed_size_bytes"] < doc["source"]["compressed_size_bytes"]
        assert any("no faster" in w for w in doc["warnings"])
        assert doc["pruning_effect"]["cosine"] < 1.0


def conv_flatten_onnx(path):
    """Conv (explicit pads), Relu, Flatten, Gemm: a graph onnx2torch and litert-torch both handle."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.1, n)
             for n, s in (("w", (4, 1, 3, 3)), ("b", (4,)), ("fw", (10, 4 * 28 * 28)), ("fb", (10,)))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
         helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_onnx_to_tflite_works_or_says_why(shared_models, tmp_path):
    small = conv_flatten_onnx(tmp_path / "small.onnx")
    doc = optimize(small, Recipe(target="tflite"), tmp_path / "ok")
    assert doc["conversion"]["check"]["passed"] and inspect_model(tmp_path / "ok" / "model.tflite").runnable
    with pytest.raises(ConversionError, match="ONNX -> TFLite is not supported for this model because"):
        optimize(shared_models / "onnx" / "mnist.onnx", Recipe(target="tflite"), tmp_path / "no")
    assert not (tmp_path / "no" / "model.tflite").exists()


def test_refusals_name_the_model(shared_models, tmp_path):
    src = shared_models / "tflite" / "hello_world_int8.tflite"
    with pytest.raises(RecipeError) as err:
        optimize(src, Recipe(target="tflite", quantization=Quantization("int8")), tmp_path)
    assert str(src) in str(err.value) and "already quantized" in str(err.value)
    with pytest.raises(ConversionError, match="runtime refuses"):
        optimize(shared_models / "tflite" / "person_detect.tflite", Recipe(target="onnx"), tmp_path)


def test_float_check_fails_loudly_above_tolerance():
    ref = [np.array([[1.0, 2.0, 3.0]])]
    assert check_float(ref, [ref[0] + 1e-6], "X -> Y")["passed"]
    with pytest.raises(ConversionError, match="X -> Y changed the model's outputs"):
        check_float(ref, [ref[0] * 1.01], "X -> Y")


def _hand_count_mnist_cnn() -> tuple[int, int]:
    """Parameters and multiply-accumulates of archs.mnist_cnn at [1, 1, 28, 28], counted from its layer sizes."""
    convs = ((1, 16, 28), (16, 32, 14), (32, 64, 7))  # (in, out, output side): 3x3 kernels, padding 1
    linears = ((64 * 7 * 7, 64), (64, 10))
    params = sum(o * i * 9 + o for i, o, _ in convs) + sum(i * o + o for i, o in linears)
    macs = sum(o * side * side * i * 9 for i, o, side in convs) + sum(i * o for i, o in linears)
    return params, macs


def test_reported_params_and_macs_equal_a_hand_count(samples, tmp_path):
    params, macs = _hand_count_mnist_cnn()
    doc = optimize(samples["torch_model"], Recipe(), tmp_path)
    assert doc["source"]["params"] == doc["params_before"] == doc["params_after"] == params == 224714
    assert doc["source"]["macs"] == doc["macs_before"] == doc["output"]["macs"] == macs == 2120576
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(tmp_path / "model.onnx")).graph  # onnx's own view of the exported weights
    weights = sum(numpy_helper.to_array(t).size for t in graph.initializer  # not the 1/255 scale or a reshape's shape
                  if t.data_type == onnx.TensorProto.FLOAT and numpy_helper.to_array(t).size > 1)
    assert weights == params


def _torch_stage_without_counting(request, report=None):
    """torch_stage with its MAC counter made to fail: it must take the inspector's counts and run the module once."""
    from studio.core.convert import torch_route

    runs = []
    real_forward = torch_route.forward

    def counted_forward(*args, **kwargs):
        runs.append(1)
        return real_forward(*args, **kwargs)

    def no_count(*args, **kwargs):
        raise AssertionError("counted MACs again")

    torch_route.count_params_macs, torch_route.forward = no_count, counted_forward
    result = torch_route.torch_stage(request)
    return result.params_before, result.macs_after, len(runs), result.ref is result.ref_before


def test_the_torch_stage_takes_the_inspectors_counts(samples, tmp_path):
    from studio.core.convert.request import ConvertRequest
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import ShapeRequest, resolve

    info = inspect_model(samples["torch_model"])
    x = synthetic(resolve(info.inputs, ShapeRequest()), 4)
    request = ConvertRequest(src=samples["torch_model"], fmt=info.format, recipe=Recipe(), verify_x=x,
                             out=str(tmp_path / "m.onnx"), inputs=x.inputs, params=info.params, macs=info.macs)
    assert run_job(_torch_stage_without_counting, request) == (*_hand_count_mnist_cnn(), 1, True)


def _unknown_op_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)],
                              ir_version=8)
    onnx.save(model, str(path))
    return path


def test_a_result_that_does_not_run_is_refused_by_the_gate(tmp_path):
    from studio.core.measure.fidelity import Scoring
    from studio.core.optimize.optimize import _gate
    from studio.core.optimize.stage import FloatStage, StageRequest
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import ShapeRequest, resolve

    bad = _unknown_op_onnx(tmp_path / "bad.onnx")
    assert not inspect_model(bad).runnable  # the probe finds it out...
    assert inspect_model(bad, probe=False).runnable  # ...and without the probe only the gate's run does
    src = conv_flatten_onnx(tmp_path / "src.onnx")
    info = inspect_model(src)
    x = synthetic(resolve(info.inputs, ShapeRequest()), 4)
    request = StageRequest(model=str(src), info=info, recipe=Recipe(), inputs=x.inputs, verify_x=x, calib_x=x,
                           work=tmp_path)
    with pytest.raises(ConversionError, match="the result does not run: ") as err:
        _gate(request, FloatStage("ONNX -> ONNX", str(src), None, False), str(bad), Scoring(), None, False)
    assert "NoSuchOp" in str(err.value) and "\n" not in str(err.value)


def test_a_finished_result_that_does_not_run_is_one_line(tmp_path):
    """Finishing runs the result (its outputs feed the gate, which then runs nothing again): a result its runtime
    refuses is the same one-line refusal the gate gives."""
    from studio.core.measure.runtimes import OnnxRunner
    from studio.core.quantize.backend import result_outputs
    from studio.core.tensors.samples import synthetic
    from studio.core.tensors.shapes import ShapeRequest, resolve

    bad = _unknown_op_onnx(tmp_path / "bad.onnx")
    src = conv_flatten_onnx(tmp_path / "src.onnx")
    x = synthetic(resolve(inspect_model(src).inputs, ShapeRequest()), 2)
    with pytest.raises(ConversionError, match=r"^the result does not run: ") as err:
        result_outputs(OnnxRunner, str(bad), x)
    assert "NoSuchOp" in str(err.value) and "\n" not in str(err.value)
    got = result_outputs(OnnxRunner, str(src), x)
    want = OnnxRunner(str(src)).session.run(None, {"x": x.arrays[0][:1]})[0]
    np.testing.assert_allclose(got[0][:1], want, rtol=1e-6)
