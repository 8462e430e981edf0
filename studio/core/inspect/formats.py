"""Tell which model format a path holds from its name and its first bytes, before any framework is imported."""
from __future__ import annotations

import os
import zipfile
from enum import StrEnum
from pathlib import Path

from studio.core.base.errors import ModelLoadError


class Format(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch_export"  # torch.export .pt2 archive
    TORCH_SAVE = "torch_save"  # torch.save file: a state_dict, a checkpoint dict, or a pickled module
    KERAS = "keras"
    H5 = "h5"
    SAVEDMODEL = "savedmodel"

    @property
    def framework(self) -> str:
        return {
            Format.ONNX: "onnx", Format.TFLITE: "tflite", Format.KERAS: "keras", Format.H5: "keras",
            Format.SAVEDMODEL: "tensorflow",
        }.get(self, "pytorch")


FAMILY_NAMES = {"onnx": "ONNX", "tflite": "TFLite", "pytorch": "PyTorch", "keras": "Keras", "tensorflow": "SavedModel"}
EXTENSIONS = {
    ".onnx": "onnx", ".tflite": "tflite", ".pt": "pytorch", ".pth": "pytorch", ".pt2": "pytorch", ".ts": "pytorch",
    ".torchscript": "pytorch", ".ckpt": "pytorch", ".keras": "keras", ".h5": "keras", ".hdf5": "keras",
}
EXPECTED_TEXT = ".onnx, .tflite, .pt, .pth, .pt2, .keras, .h5 or a SavedModel directory"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _sniff_zip(path: Path) -> Format | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    base = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return Format.KERAS
    if "archive_format" in base or any(n.startswith("models/") for n in base):
        return Format.TORCH_EXPORT
    if "constants.pkl" in base or any(n.startswith("code/") for n in base):
        return Format.TORCHSCRIPT
    if "data.pkl" in base:
        return Format.TORCH_SAVE
    return None


def sniff(path: Path) -> Format | None:
    """The format the bytes of a file look like, or None when they match none we know."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(HDF5_MAGIC):
        return Format.H5
    if head[4:8] == b"TFL3":
        return Format.TFLITE
    if head.startswith(b"PK"):
        return _sniff_zip(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return Format.TORCH_SAVE  # legacy (non-zip) torch.save pickle
    if head[:1] == b"\x08":  # ModelProto field 1 (ir_version, varint): how every ONNX file begins
        return Format.ONNX
    return None


def detect(path: str | os.PathLike) -> Format:
    """The format of `path`, or a ModelLoadError naming the file and what is wrong with it."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError("file not found", p)
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return Format.SAVEDMODEL
        raise ModelLoadError(f"is a directory without saved_model.pb; expected {EXPECTED_TEXT}", p)
    if not p.is_file():
        raise ModelLoadError("is not a regular file", p)
    try:
        size = p.stat().st_size
        content = sniff(p) if size else None
    except OSError as exc:
        raise ModelLoadError(f"cannot be read ({exc.strerror or exc})", p) from None
    if size == 0:
        raise ModelLoadError("file is empty (0 bytes)", p)
    family = EXTENSIONS.get(p.suffix.lower())
    if family is None:
        hint = f"; its content looks like a {FAMILY_NAMES[content.framework]} model" if content else ""
        raise ModelLoadError(f"unsupported file extension '{p.suffix or '(none)'}'{hint}; expected {EXPECTED_TEXT}", p)
    if content is not None and content.framework != family and not (family == "keras" and content == Format.H5):
        raise ModelLoadError(
            f"the extension says {FAMILY_NAMES[family]} but the content is a {FAMILY_NAMES[content.framework]} model;"
            " rename the file to match its content", p)
    if family == "onnx":
        return Format.ONNX  # protobuf has no magic number: the ONNX parser decides
    if family == "tflite":
        if content != Format.TFLITE:
            raise ModelLoadError("not a TFLite flatbuffer (no 'TFL3' identifier): the file is corrupt or not TFLite", p)
        return Format.TFLITE
    if family == "keras":
        if p.suffix.lower() == ".keras":
            if content != Format.KERAS:
                raise ModelLoadError("not a Keras v3 archive (a .keras file is a zip with config.json): the file is"
                                     " truncated or corrupt", p)
            return Format.KERAS
        if content != Format.H5:
            raise ModelLoadError("not an HDF5 file (bad signature): the file is truncated or corrupt", p)
        return Format.H5
    if content is None or content.framework != "pytorch":
        raise ModelLoadError("not a PyTorch file (neither a torch zip archive nor a pickle): the file is truncated"
                             " or corrupt", p)
    return content
