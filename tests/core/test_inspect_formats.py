"""Inspect each supported format from real files: ONNX with external weights, PyTorch archives and Keras saves."""
import json
import subprocess
import sys

import numpy as np
import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.inspect.inspector import inspect_model


def small_onnx(path, external: bool):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv_w")
    fc = numpy_helper.from_array(rng.standard_normal((8 * 30 * 30, 4)).astype(np.float32), "fc_w")
    shape = numpy_helper.from_array(np.array([-1, 8 * 30 * 30], dtype=np.int64), "flat")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "conv_w"], ["c"], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Reshape", ["r", "flat"], ["f"]),
         helper.make_node("MatMul", ["f", "fc_w"], ["y"])],
        "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w, fc, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
    return path


def test_onnx_with_external_weights(tmp_path):
    path = small_onnx(tmp_path / "ext.onnx", external=True)
    info = inspect_model(path)
    assert info.details["external_data"] == [str(tmp_path / "ext.onnx.data")]
    assert info.size_bytes == path.stat().st_size + (tmp_path / "ext.onnx.data").stat().st_size
    assert info.inputs[0].shape == ["batch", 3, 32, 32] and info.inputs[0].dynamic
    assert info.params == 8 * 27 + 8 * 900 * 4
    assert info.macs == 30 * 30 * 8 * 27 + 8 * 900 * 4 and info.runnable


def test_onnx_missing_or_truncated_external_weights(tmp_path):
    path = small_onnx(tmp_path / "ext.onnx", external=True)
    data = tmp_path / "ext.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"ext\.onnx\.data' is truncated"):
        inspect_model(path)
    data.unlink()
    with pytest.raises(ModelLoadError, match=r"ext\.onnx\.data' is missing"):
        inspect_model(path)


def test_torch_export_sample(samples):
    info = inspect_model(samples["torch_model"])
    assert info.format == "torch_export" and info.framework == "pytorch"
    assert info.inputs[0].shape == ["batch", 1, 28, 28] and info.outputs[0].shape == ["batch", 10]
    assert info.ops["conv2d"] == 3 and info.params == 224_714
    assert info.details["studio"]["arch"] == "studio.mnist_cnn"
    convs = 28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 7 * 7 * 64 * 32 * 9
    assert info.macs == convs + 64 * 49 * 64 + 64 * 10


def test_state_dict_needs_arch_and_must_match(samples, tmp_path):
    plain = inspect_model(samples["torch_state_dict"])
    assert plain.format == "torch_state_dict" and plain.params == 224_714 and plain.inputs == []
    assert any(p.code == "no-architecture" for p in plain.problems)
    full = inspect_model(samples["torch_state_dict"], arch=ArchSpec("studio.mnist_cnn"))
    assert full.outputs[0].shape == [1, 10] and full.ops["Conv2d"] == 3 and full.macs > 2_000_000
    with pytest.raises(ModelLoadError, match="does not match --arch resnet18"):
        inspect_model(samples["torch_state_dict"], arch=ArchSpec("resnet18"))
    with pytest.raises(ModelLoadError, match="unknown architecture"):
        inspect_model(samples["torch_state_dict"], arch=ArchSpec("no_such_net"))


def _torch_script(code: str, cwd):
    subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd, capture_output=True)


def test_torchvision_state_dict_and_torchscript(tmp_path):
    _torch_script("import torch, torchvision\n"
                  "m = torchvision.models.mobilenet_v3_small(num_classes=7).eval()\n"
                  "torch.save(m.state_dict(), 'mnv3.pth')\n"
                  "import warnings; warnings.simplefilter('ignore')\n"
                  "torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3, 96, 96)), 'mnv3_ts.pt')\n", tmp_path)
    sd = inspect_model(tmp_path / "mnv3.pth", arch=ArchSpec("mobilenet_v3_small"))
    assert sd.outputs[0].shape == [1, 7] and sd.inputs[0].shape == [1, 3, 224, 224]
    ts = inspect_model(tmp_path / "mnv3_ts.pt")
    assert ts.format == "torchscript" and ts.params == sd.params and ts.macs is None
    assert {p.code for p in ts.problems} == {"deprecated-format", "unknown-shape"}
    shaped = inspect_model(tmp_path / "mnv3_ts.pt", input_shape=(1, 3, 96, 96))
    assert shaped.outputs[0].shape == [1, 7] and shaped.macs > 0 and shaped.ops["_convolution"] == 52  # traced convs


def test_pickled_module_is_refused_unless_trusted(tmp_path):
    _torch_script("import torch\n"
                  "m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())\n"
                  "torch.save(m, 'whole.pt')\n", tmp_path)
    with pytest.raises(ModelLoadError) as err:
        inspect_model(tmp_path / "whole.pt")
    assert "runs code from the file" in str(err.value) and "--trust-pickle" in str(err.value)
    info = inspect_model(tmp_path / "whole.pt", trust_pickle=True, input_shape=(1, 4))
    assert info.format == "torch_module" and info.params == 15 and info.outputs[0].shape == [1, 3]


def test_keras_formats(samples, tmp_path):
    info = inspect_model(samples["keras_model"])
    assert info.format == "keras" and info.inputs[0].shape == ["?", 28, 28] and info.outputs[0].name == "logits"
    assert info.ops["Conv2D"] == 3 and info.macs > 2_000_000
    code = ("import keras, sys\n"
            f"m = keras.saving.load_model({samples['keras_model']!r})\n"
            "m.save('legacy.h5')\n"
            "m.export('saved', verbose=False)\n")
    _torch_script(code, tmp_path)
    h5 = inspect_model(tmp_path / "legacy.h5")
    assert h5.format == "h5" and h5.params == info.params and h5.macs == info.macs
    saved = inspect_model(tmp_path / "saved")
    assert saved.format == "savedmodel" and saved.params == info.params
    assert saved.inputs[0].shape == ["?", 28, 28] and saved.outputs[0].shape == ["?", 10]
    assert saved.ops.get("Conv2D") == 3 and saved.macs == info.macs


def test_keras_lambda_layer_is_refused(tmp_path):
    code = ("import keras\n"
            "m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])\n"
            "m.save('lam.keras')\n")
    _torch_script(code, tmp_path)
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        inspect_model(tmp_path / "lam.keras")


def test_json_matches_the_documented_schema(shared_models, samples):
    import jsonschema

    from studio.core.schemas import load_schema

    schema = load_schema("inspect")
    for path in (shared_models / "onnx" / "mnist.onnx", shared_models / "tflite" / "person_detect.tflite",
                 samples["keras_model"]):
        doc = json.loads(json.dumps(inspect_model(path).to_dict()))
        jsonschema.validate(doc, schema)
        assert {"format", "inputs", "outputs", "params", "size_bytes", "ops", "problems"} <= set(doc)
