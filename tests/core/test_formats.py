"""Format detection: every kind of bad path gets a one-line ModelLoadError that names the file."""
import os
import zipfile

import pytest

from studio.core.base.errors import ModelLoadError
from studio.core.inspect.formats import Format, detect


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
