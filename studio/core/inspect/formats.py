"""Which model format a path holds, from its name and first bytes (no framework imported), and its inspector."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from studio.core.base.errors import ModelLoadError
from studio.core.base.pool import WorkerKind
from studio.core.base.progress import Report, ignore
from studio.core.tensors.shapes import ShapeRequest

if TYPE_CHECKING:  # modelinfo imports Framework from here; archs imports torch
    from studio.core.inspect.archs import ArchSpec
    from studio.core.inspect.modelinfo import ModelInfo, Problem


class Framework(StrEnum):
    """The family a model format belongs to; its value is what `inspect --json` writes as "framework"."""
    ONNX = "onnx"
    TFLITE = "tflite"
    PYTORCH = "pytorch"
    KERAS = "keras"
    TENSORFLOW = "tensorflow"

    @property
    def display_name(self) -> str:
        return _DISPLAY_NAMES[self]

    @property
    def worker_kind(self) -> WorkerKind:
        """The warm worker that loads and runs models of this family."""
        return _WORKER_KINDS[self]


_WORKER_KINDS = {Framework.ONNX: WorkerKind.ONNXRUNTIME, Framework.TFLITE: WorkerKind.LITERT,
                 Framework.PYTORCH: WorkerKind.TORCH, Framework.KERAS: WorkerKind.TENSORFLOW,
                 Framework.TENSORFLOW: WorkerKind.TENSORFLOW}
_DISPLAY_NAMES = {Framework.ONNX: "ONNX", Framework.TFLITE: "TFLite", Framework.PYTORCH: "PyTorch",
                  Framework.KERAS: "Keras", Framework.TENSORFLOW: "SavedModel"}


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
    def framework(self) -> Framework:
        return {
            Format.ONNX: Framework.ONNX, Format.TFLITE: Framework.TFLITE, Format.KERAS: Framework.KERAS,
            Format.H5: Framework.KERAS, Format.SAVEDMODEL: Framework.TENSORFLOW,
        }.get(self, Framework.PYTORCH)


_PT, _KERAS = Framework.PYTORCH, Framework.KERAS
EXTENSIONS = {
    ".onnx": Framework.ONNX, ".tflite": Framework.TFLITE, ".pt": _PT, ".pth": _PT, ".pt2": _PT, ".ts": _PT,
    ".jit": _PT, ".torchscript": _PT, ".ckpt": _PT, ".keras": _KERAS, ".h5": _KERAS, ".hdf5": _KERAS,
}
EXPECTED_TEXT = ".onnx, .tflite, .pt, .pth, .pt2, .ts, .jit, .keras, .h5 or a SavedModel directory"
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
        hint = f"; its content looks like a {content.framework.display_name} model" if content else ""
        raise ModelLoadError(f"unsupported file extension '{p.suffix or '(none)'}'{hint}; expected {EXPECTED_TEXT}", p)
    if content is not None and content.framework != family and not (family == "keras" and content == Format.H5):
        raise ModelLoadError(
            f"the extension says {family.display_name} but the content is a {content.framework.display_name} model;"
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


@dataclass(frozen=True)
class InspectOptions:
    """What a loader may need besides the file: a PyTorch architecture, leave to unpickle, the input shapes (and
    dtypes) the user gave, which a PyTorch module needs to run at all."""
    arch: ArchSpec | None = None
    trust_pickle: bool = False
    shapes: ShapeRequest = ShapeRequest()

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.shapes.single


class Inspector(Protocol):
    """Reads one format. Its framework is imported inside its methods, so that this table costs no imports."""
    runtime: str | None  # the runtime whose check runs beside the parser (in its own process), or None

    def inspect(self, path: str, options: InspectOptions, report: Report = ignore) -> ModelInfo: ...

    def probe(self, path: str, report: Report = ignore) -> list[Problem]:
        """The problems the runtime finds when it loads and runs the model; only where `runtime` is set."""
        ...

    def settle(self, info: ModelInfo) -> None:
        """Add what needs the parser's and the runtime's findings together (after both have run)."""
        ...


class _Onnx:
    runtime: str | None = "onnxruntime"

    def inspect(self, path: str, options: InspectOptions, report: Report = ignore) -> ModelInfo:
        from studio.core.inspect.onnx_model import inspect_onnx
        return inspect_onnx(path, report=report)

    def probe(self, path: str, report: Report = ignore) -> list[Problem]:
        from studio.core.inspect.onnx_model import probe_onnx
        return probe_onnx(path, report=report)

    def settle(self, info: ModelInfo) -> None:
        pass


class _TFLite:
    runtime: str | None = "ai-edge-litert"

    def inspect(self, path: str, options: InspectOptions, report: Report = ignore) -> ModelInfo:
        from studio.core.inspect.tflite_model import inspect_tflite
        return inspect_tflite(path, report=report)

    def probe(self, path: str, report: Report = ignore) -> list[Problem]:
        from studio.core.inspect.tflite_model import inspect_tflite, probe_tflite
        return probe_tflite(path, inspect_tflite(path).details.get("custom_ops", []), report=report)

    def settle(self, info: ModelInfo) -> None:
        """A custom operator the runtime check did not name (it crashed or hung first) still gets its warning."""
        from studio.core.inspect.tflite_model import custom_op_warning
        if info.details.get("custom_ops") and not any(p.code == "custom-op" for p in info.problems):
            info.problems.append(custom_op_warning(info.details["custom_ops"]))


class _NoRuntime:
    """A format read by loading it into its framework: the load is the check; there is no separate runtime."""
    runtime: str | None = None

    def probe(self, path: str, report: Report = ignore) -> list[Problem]:
        return []

    def settle(self, info: ModelInfo) -> None:
        pass


@dataclass(frozen=True)
class _Torch(_NoRuntime):
    format: Format

    def inspect(self, path: str, options: InspectOptions, report: Report = ignore) -> ModelInfo:
        from studio.core.inspect.torch_model import inspect_torch
        return inspect_torch(path, self.format.value, options, report=report)


@dataclass(frozen=True)
class _Keras(_NoRuntime):
    format: Format

    def inspect(self, path: str, options: InspectOptions, report: Report = ignore) -> ModelInfo:
        from studio.core.inspect.keras_model import inspect_keras
        return inspect_keras(path, self.format.value, report=report)


INSPECTORS: dict[Format, Inspector] = {
    Format.ONNX: _Onnx(), Format.TFLITE: _TFLite(),
    Format.TORCHSCRIPT: _Torch(Format.TORCHSCRIPT), Format.TORCH_EXPORT: _Torch(Format.TORCH_EXPORT),
    Format.TORCH_SAVE: _Torch(Format.TORCH_SAVE),
    Format.KERAS: _Keras(Format.KERAS), Format.H5: _Keras(Format.H5), Format.SAVEDMODEL: _Keras(Format.SAVEDMODEL),
}
