"""Recipes: what to do to a model (target, pruning, quantization, preprocessing, runtime), saved as TOML.

A Recipe is frozen and validated on construction, so it is safe to hand to another thread or process.
`check_source(recipe, fmt)` refuses combinations that cannot work for a given source format, with the reason."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

import tomli_w

from studio.core.base import atomic
from studio.core.base.errors import RecipeError

SCHEMA_VERSION = 2


class Target(StrEnum):
    ONNX = "onnx"
    TFLITE = "tflite"


class PruneMethod(StrEnum):
    NONE = "none"
    STRUCTURED = "structured"  # remove whole channels (torch-pruning): smaller and faster
    UNSTRUCTURED = "unstructured"  # zero the smallest weights: smaller when compressed, not faster


class PruneScope(StrEnum):
    LAYER = "layer"  # every layer loses the same fraction: no layer is emptied by another's larger weights
    GLOBAL = "global"  # one magnitude threshold (unstructured) or channel ranking (structured) across all layers


class QuantMode(StrEnum):
    NONE = "none"
    DYNAMIC = "dynamic"  # int8 weights, activations quantized on the fly
    INT8 = "int8"  # static: int8 weights and activations, calibrated on data
    FP16 = "fp16"  # half-precision weights


class CalibMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Layout(StrEnum):
    AS_IS = "as_is"  # samples already match the model's layout
    NCHW = "nchw"  # samples are HWC images, the model wants CHW
    NHWC = "nhwc"  # samples are CHW, the model wants HWC


def _enum(cls, value, what):
    try:
        return value if isinstance(value, cls) else cls(str(value).lower())
    except ValueError:
        raise RecipeError(f"{what} must be one of {', '.join(v.value for v in cls)}, not '{value}'") from None


@dataclass(frozen=True)
class Pruning:
    method: PruneMethod = PruneMethod.NONE
    ratio: float = 0.0  # structured: fraction of channels removed; unstructured: fraction of weights zeroed
    scope: PruneScope = PruneScope.LAYER  # spread the ratio over each layer, or rank across all layers together
    layer_ratios: dict[str, float] = field(default_factory=dict)  # per-layer overrides (module name -> ratio)
    keep_layers: tuple[str, ...] = ()  # layers never pruned (the classifier is always kept)
    finetune_epochs: int = 0  # recovery training after structured pruning, when training data is given
    finetune_lr: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "method", _enum(PruneMethod, self.method, "pruning method"))
        object.__setattr__(self, "scope", _enum(PruneScope, self.scope, "pruning scope"))
        object.__setattr__(self, "keep_layers", tuple(self.keep_layers))
        object.__setattr__(self, "layer_ratios", {str(k): float(v) for k, v in dict(self.layer_ratios).items()})
        for name, r in [("ratio", self.ratio), *self.layer_ratios.items()]:
            if not 0.0 <= r < 1.0:
                raise RecipeError(f"pruning {name} must be at least 0 and below 1, not {r}")
        if self.method != PruneMethod.NONE and self.ratio == 0 and not self.layer_ratios:
            raise RecipeError(f"{self.method.value} pruning needs a ratio above 0")
        if self.finetune_epochs < 0 or self.finetune_lr <= 0:
            raise RecipeError("fine-tuning needs epochs >= 0 and a learning rate above 0")


@dataclass(frozen=True)
class Quantization:
    mode: QuantMode = QuantMode.NONE
    calibration: CalibMethod = CalibMethod.MINMAX
    per_channel: bool = True
    io: str = "int8"  # TFLite full-integer models: "int8" or "float" inputs and outputs
    calib_samples: int = 100

    def __post_init__(self):
        object.__setattr__(self, "mode", _enum(QuantMode, self.mode, "quantization"))
        object.__setattr__(self, "calibration", _enum(CalibMethod, self.calibration, "calibration method"))
        if self.io not in ("int8", "float"):
            raise RecipeError(f"quantized I/O must be 'int8' or 'float', not '{self.io}'")
        if self.calib_samples < 1:
            raise RecipeError("calibration needs at least 1 sample")


@dataclass(frozen=True)
class Preprocess:
    """How dataset samples become model inputs. The default only reshapes and casts: no scaling."""
    scale: float = 1.0  # multiply samples by this (e.g. 1/255)
    mean: tuple[float, ...] = ()  # then subtract per-channel mean ...
    std: tuple[float, ...] = ()  # ... and divide by per-channel std
    resize: tuple[int, int] | None = None  # (height, width) for image datasets
    layout: Layout = Layout.AS_IS

    def __post_init__(self):
        object.__setattr__(self, "layout", _enum(Layout, self.layout, "layout"))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.resize is not None:
            object.__setattr__(self, "resize", tuple(int(v) for v in self.resize))
            if len(self.resize) != 2 or min(self.resize) < 1:
                raise RecipeError("resize must be [height, width]")
        if self.std and any(s == 0 for s in self.std):
            raise RecipeError("std values must not be 0")
        if self.mean and self.std and len(self.mean) != len(self.std):
            raise RecipeError("mean and std need the same number of channels")

    @property
    def is_identity(self) -> bool:
        return self == Preprocess()


@dataclass(frozen=True)
class Runtime:
    opset: int = 17
    threads: int = 1

    def __post_init__(self):
        if not 7 <= self.opset <= 23:
            raise RecipeError(f"ONNX opset must be between 7 and 23, not {self.opset}")
        if self.threads < 1:
            raise RecipeError("threads must be at least 1")


@dataclass(frozen=True)
class Recipe:
    target: Target = Target.ONNX
    pruning: Pruning = field(default_factory=Pruning)
    quantization: Quantization = field(default_factory=Quantization)
    preprocess: Preprocess = field(default_factory=Preprocess)
    runtime: Runtime = field(default_factory=Runtime)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        object.__setattr__(self, "target", _enum(Target, self.target, "target"))
        q = self.quantization
        if q.mode == QuantMode.INT8 and q.calibration != CalibMethod.MINMAX and self.target == Target.TFLITE:
            raise RecipeError(f"calibration method '{q.calibration.value}' is available for ONNX targets"
                              " (onnxruntime); TFLite quantizers calibrate with min/max")

    @property
    def label(self) -> str:
        """A short name such as 'tflite int8 prune0.50'."""
        parts = [self.target.value, self.quantization.mode.value if self.quantization.mode != QuantMode.NONE
                 else "fp32"]
        if self.pruning.method != PruneMethod.NONE:
            short = "prune" if self.pruning.method == PruneMethod.STRUCTURED else "sparse"
            parts.append(f"{short}{self.pruning.ratio:.2f}")
        return " ".join(parts)

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)

    # --- TOML ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def plain(obj):
            if isinstance(obj, Enum):
                return obj.value
            if isinstance(obj, dict):
                return {k: plain(v) for k, v in obj.items() if v is not None}
            if isinstance(obj, (list, tuple)):
                return [plain(v) for v in obj]
            return obj

        d = plain(dataclasses.asdict(self))
        return {"schema_version": d.pop("schema_version"), **d}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        atomic.write_text(path, self.to_toml())

    @classmethod
    def from_dict(cls, doc: dict, source: str | None = None) -> Recipe:
        doc = migrate(dict(doc), source)
        sections = {"pruning": Pruning, "quantization": Quantization, "preprocess": Preprocess, "runtime": Runtime}
        unknown = set(doc) - set(sections) - {"target", "schema_version"}
        if unknown:
            raise RecipeError(f"unknown recipe key(s): {', '.join(sorted(unknown))}", source)
        kwargs = {"target": doc.get("target", "onnx"), "schema_version": SCHEMA_VERSION}
        try:
            for key, klass in sections.items():
                part = doc.get(key, {})
                if not isinstance(part, dict):
                    raise RecipeError(f"[{key}] must be a table")
                names = {f.name for f in dataclasses.fields(klass)}
                bad = set(part) - names
                if bad:
                    raise RecipeError(f"unknown key(s) in [{key}]: {', '.join(sorted(bad))}")
                kwargs[key] = klass(**part)
            return cls(**kwargs)
        except RecipeError as exc:
            raise RecipeError(exc.message, source) from None
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"invalid recipe value: {exc}", source) from None

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        return cls.from_dict(read_toml(path), str(path))


def read_toml(path: str | Path) -> dict:
    """A recipe or grid file as a dict, or a RecipeError naming the file."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError("file not found", p) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"not valid TOML ({exc})", p) from None


def migrate(doc: dict, source: str | None = None) -> dict:
    """Bring an older recipe document up to SCHEMA_VERSION; refuse newer ones."""
    version = doc.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecipeError(f"recipe schema_version {version} is newer than this studio understands"
                          f" ({SCHEMA_VERSION}); update the studio", source)
    if version == 0:  # drafts before versioning wrote quantization as a bare string and "prune_ratio" on top
        if isinstance(doc.get("quantization"), str):
            doc["quantization"] = {"mode": doc["quantization"]}
        if "prune_ratio" in doc:
            ratio = doc.pop("prune_ratio")
            doc["pruning"] = {"method": "structured" if ratio else "none", "ratio": ratio}
        doc["schema_version"] = 1
    if doc["schema_version"] == 1:  # version 1 pruned unstructured globally whatever its scope said
        if isinstance(doc.get("pruning"), dict):
            pruning = doc["pruning"] = dict(doc["pruning"])  # the caller's document stays as it was
            structured_per_layer = pruning.get("method") == "structured" and pruning.get("scope") == "per_layer"
            pruning["scope"] = (PruneScope.LAYER if structured_per_layer else PruneScope.GLOBAL).value
        doc["schema_version"] = 2
    return doc


def check_source(recipe: Recipe, fmt: str, has_module: bool = False, quantized_source: bool = False) -> None:
    """Refuse, with the reason, a recipe that cannot work on a model of format `fmt`."""
    framework = {"onnx": "onnx", "tflite": "tflite", "keras": "keras", "h5": "keras",
                 "savedmodel": "tensorflow"}.get(fmt, "pytorch")
    p, q = recipe.pruning, recipe.quantization
    if p.method == PruneMethod.STRUCTURED:
        if framework == "tflite":
            raise RecipeError("structured pruning cannot be applied to a TFLite file: its graph is compiled, so"
                              " channels cannot be removed from it; prune the PyTorch model it came from")
        if framework in ("keras", "tensorflow"):
            raise RecipeError("structured pruning needs a PyTorch model: tensorflow-model-optimization cannot"
                              " prune Keras 3 models; use unstructured pruning, or prune the PyTorch original")
        if framework == "onnx":
            raise RecipeError("structured pruning needs a PyTorch model: an ONNX graph's channels cannot be"
                              " removed safely here; prune the PyTorch model it was exported from")
        if not has_module:
            raise RecipeError("structured pruning needs the model's Python architecture: open a state_dict with"
                              " --arch, or a .pt2 saved by Studio; TorchScript modules cannot be pruned")
    if p.finetune_epochs and p.method != PruneMethod.STRUCTURED:
        raise RecipeError("fine-tuning is a recovery step for structured pruning; set pruning to structured")
    if p.method == PruneMethod.UNSTRUCTURED and framework == "tflite" and quantized_source:
        raise RecipeError("unstructured pruning works on float weights; this TFLite model's weights are already"
                          " integer")
    if q.mode != QuantMode.NONE and quantized_source:
        raise RecipeError("the model is already quantized (integer weights); quantize its float original instead")
    if q.mode == QuantMode.INT8 and q.io == "float" and recipe.target == Target.TFLITE and \
            framework not in ("keras", "tensorflow"):
        raise RecipeError("float I/O with full-integer TFLite is available for Keras models (TFLiteConverter);"
                          " the PyTorch/TFLite quantizers make int8 inputs and outputs, so use io = 'int8'")
