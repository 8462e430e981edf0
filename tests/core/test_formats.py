"""Format detection: every kind of bad path gets a one-line ModelLoadError that names the file."""
import json
import os
import zipfile
from pathlib import Path

import pytest

import studio.core.schemas
from studio.core.base.errors import ModelLoadError, RecipeError
from studio.core.inspect.formats import INSPECTORS, Format, Framework, detect
from studio.core.inspect.modelinfo import ModelInfo, Problem


def expect_error(path, fragment):
    with pytest.raises(ModelLoadError) as err:
        detect(path)
    line = err.value.one_line()
    assert str(path) in line and fragment in line and "\n" not in line
    return line


def test_missing_empty_and_directory(tmp_path):
    expect_error(tmp_path / "nope.onnx", "file not found")
    (tmp_path / "empty.tflite").write_bytes(b"")
    expect_error(tmp_path / "empty.tflite", "empty")
    expect_error(tmp_path, "saved_model.pb")


def test_unknown_extension_names_the_expected_ones(tmp_path):
    bad = tmp_path / "weights.txt"
    bad.write_text("hello")
    line = expect_error(bad, "unsupported file extension '.txt'")
    assert ".onnx" in line and ".tflite" in line


def test_content_that_contradicts_the_extension(tmp_path, shared_models):
    renamed = tmp_path / "model.onnx"
    renamed.write_bytes((shared_models / "tflite" / "hello_world_float.tflite").read_bytes())
    expect_error(renamed, "content is a TFLite model")
    onnx_as_tflite = tmp_path / "model.tflite"
    onnx_as_tflite.write_bytes((shared_models / "onnx" / "mnist.onnx").read_bytes())
    expect_error(onnx_as_tflite, "TFLite")


def test_random_bytes_are_refused_per_family(tmp_path):
    data = os.urandom(4096)
    for name, fragment in (("a.tflite", "not a TFLite flatbuffer"), ("a.pt", "not a PyTorch file"),
                           ("a.keras", "not a Keras v3 archive"), ("a.h5", "not an HDF5 file")):
        (tmp_path / name).write_bytes(b"\x00\x01" + data)
        expect_error(tmp_path / name, fragment)


def test_zip_layouts_are_told_apart(tmp_path):
    def make(name, members):
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for m in members:
                zf.writestr(m, b"x")
        return tmp_path / name

    assert detect(make("a.pt2", ["a/archive_format", "a/models/model.json"])) == Format.TORCH_EXPORT
    assert detect(make("b.pt", ["b/code/__torch__/m.py", "b/constants.pkl", "b/data.pkl"])) == Format.TORCHSCRIPT
    assert detect(make("c.pth", ["c/data.pkl", "c/version"])) == Format.TORCH_SAVE
    assert detect(make("d.keras", ["config.json", "metadata.json", "model.weights.h5"])) == Format.KERAS


def test_each_format_has_an_inspector_and_only_onnx_and_tflite_have_a_runtime_check():
    assert set(INSPECTORS) == set(Format)
    assert {f for f, inspector in INSPECTORS.items() if inspector.runtime} == {Format.ONNX, Format.TFLITE}


def test_frameworks_are_the_schema_values_and_each_has_one_display_name():
    schema = json.loads((Path(studio.core.schemas.__file__).parent / "inspect.schema.json").read_text())
    assert sorted(Framework) == sorted(schema["properties"]["framework"]["enum"])
    assert {f.value: f.display_name for f in Framework} == {
        "onnx": "ONNX", "tflite": "TFLite", "pytorch": "PyTorch", "keras": "Keras", "tensorflow": "SavedModel"}
    assert {f.framework for f in Format} == set(Framework)


def _info(framework, *problems):
    return ModelInfo("m.x", "fmt", framework, inputs=[], outputs=[], params=0, size_bytes=0, files=[],
                     weight_dtypes={}, ops={}, macs=None, problems=list(problems))


def test_model_info_json_keeps_the_framework_a_plain_string_and_reads_back_the_enum():
    info = _info(Framework.PYTORCH, Problem("warning", "w", "mind this"))
    text = json.dumps(info.to_dict())
    assert '"framework": "pytorch"' in text
    back = ModelInfo.from_dict(json.loads(text))
    assert back == info and type(back.framework) is Framework


def test_model_info_json_keeps_its_key_order_and_takes_the_facts_by_name_only():
    assert list(_info(Framework.ONNX).to_dict()) == [
        "path", "format", "framework", "inputs", "outputs", "params", "size_bytes", "files", "weight_dtypes", "ops",
        "macs", "problems", "details", "layers", "schema_version", "runnable"]
    with pytest.raises(TypeError):
        ModelInfo("m.x", "fmt", Framework.ONNX, [], [], 0, 0, [], {}, {}, None)  # type: ignore[misc]


def test_require_runnable_names_the_first_error_and_the_file():
    error, later = Problem("error", "runtime-refused", "no kernel for Foo"), Problem("error", "x", "second")
    _info(Framework.ONNX, Problem("warning", "w", "only a warning")).require_runnable(RecipeError, "cannot do it")
    with pytest.raises(RecipeError) as err:
        _info(Framework.ONNX, Problem("warning", "w", "first a warning"), error, later).require_runnable(
            RecipeError, "cannot do it", "m.x")
    assert err.value.one_line() == "m.x: cannot do it: no kernel for Foo"
    _info(Framework.PYTORCH, error).require_runnable(RecipeError, "cannot do it", runtimes_only=True)
    with pytest.raises(RecipeError):
        _info(Framework.TFLITE, error).require_runnable(RecipeError, "cannot do it", runtimes_only=True)
