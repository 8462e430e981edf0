"""Inspect every third-party model in ../shared/models: real files the studio did not make."""
import numpy as np
import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.inspector import inspect_model
from studio.core.measure.runtimes import open_runner


def test_mnist_onnx(shared_models):
    info = inspect_model(shared_models / "onnx" / "mnist.onnx")
    assert info.format == "onnx" and info.details["opset"] == 8
    assert [(t.name, t.shape, t.dtype) for t in info.inputs] == [("Input3", [1, 1, 28, 28], "float32")]
    assert info.outputs[0].shape == [1, 10]
    assert info.ops["Conv"] == 2 and info.ops["MatMul"] == 1
    # two convs (5x5, 8 and 16 filters) and a 256x10 MatMul, computed by hand from the model's shapes
    assert info.macs == 28 * 28 * 8 * 25 + 14 * 14 * 16 * 8 * 25 + 256 * 10
    assert info.params == (8 * 25 + 8) + (16 * 8 * 25 + 16) + (256 * 10 + 10)  # weights and biases
    assert info.problems == [] and info.runnable


def test_super_resolution_ir1_is_refused_clearly(shared_models):
    path = shared_models / "onnx" / "super_resolution.onnx"
    with pytest.raises(ModelLoadError) as err:
        inspect_model(path)
    assert "IR version 1" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("name", ["hello_world_int8.tflite", "micro_speech_quantized.tflite",
                                  "trained_lstm_int8.tflite"])
def test_int8_tflite_quantization_matches_the_runtime(shared_models, name):
    path = shared_models / "tflite" / name
    info = inspect_model(path)
    runner = open_runner(str(path))
    assert len(info.inputs) == len(runner.inputs)
    for mine, theirs in zip(info.inputs + info.outputs, runner.inputs + runner.outputs, strict=True):
        assert mine.dtype == np.dtype(theirs.dtype).name == "int8"
        assert mine.quantization.scale[0] == pytest.approx(theirs.scale)
        assert mine.quantization.zero_point[0] == theirs.zero_point
    assert info.runnable and "int8" in info.weight_dtypes


def test_float_tflite_models(shared_models):
    lstm = inspect_model(shared_models / "tflite" / "trained_lstm.tflite")
    assert lstm.inputs[0].shape[-2:] == [28, 28] and lstm.inputs[0].quantization is None
    face = inspect_model(shared_models / "tflite" / "face_detection_short_range.tflite")
    assert face.inputs[0].shape == [1, 128, 128, 3] and face.ops.get("DEQUANTIZE", 0) > 0
    assert face.macs > 10_000_000 and face.runnable
    hello = inspect_model(shared_models / "tflite" / "hello_world_float.tflite")
    assert hello.inputs[0].shape[-1] == 1 and hello.ops == {"FULLY_CONNECTED": 3}


def test_person_detect_is_listed_and_running_it_fails_with_the_same_reason(shared_models):
    path = shared_models / "tflite" / "person_detect.tflite"
    info = inspect_model(path)
    assert info.inputs[0].shape == [1, 96, 96, 1] and info.ops["CONV_2D"] == 14
    errors = [p for p in info.problems if p.severity == "error"]
    assert len(errors) == 1 and "quantized_dimension" in errors[0].message and not info.runnable
    with pytest.raises(ModelLoadError) as err:
        open_runner(str(path))
    assert err.value.message == errors[0].message


def test_selfie_segmentation_custom_op_is_named(shared_models):
    info = inspect_model(shared_models / "tflite" / "selfie_segmentation.tflite")
    assert info.details["custom_ops"] == ["Convolution2DTransposeBias"]
    assert info.ops["CUSTOM:Convolution2DTransposeBias"] == 1
    custom = [p for p in info.problems if p.code == "custom-op"]
    assert len(custom) == 1 and "Convolution2DTransposeBias" in custom[0].message
    # ai-edge-litert's XNNPACK delegate implements this op, so it runs here; the problem says a device may not
    assert custom[0].severity == "warning" and "XNNPACK" in custom[0].message
