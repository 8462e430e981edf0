"""What a framework's float conversion needs: one request object, handed to a torch or TensorFlow worker."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from studio.core.inspect.arch_spec import ArchSpec
from studio.core.recipe.recipe import QuantMode, Recipe
from studio.core.tensors.samples import Samples, TrainingData
from studio.core.tensors.shapes import InputShape


@dataclass(frozen=True, eq=False)
class ConvertRequest:
    src: str
    fmt: str  # the source's format, as the inspector names it
    recipe: Recipe
    verify_x: Samples  # inputs the reference outputs are computed on, at the resolved shapes
    out: str  # the float model to write
    arch: ArchSpec | None = None
    trust_pickle: bool = False
    inputs: tuple[InputShape, ...] = ()  # the source's inputs at the shapes they run at
    train: TrainingData | None = None  # PyTorch: recovery fine-tuning data after pruning
    calib_x: Samples | None = None  # Keras to TFLite: calibration inputs for TFLiteConverter's int8
    quantized: Mapping[QuantMode, str] = field(default_factory=dict)  # Keras to TFLite: {quant mode: path} to write
    # the inspector's counts of the source at exactly `inputs` (None: not taken there): the route need not recount
    params: int | None = None
    macs: int | None = None
