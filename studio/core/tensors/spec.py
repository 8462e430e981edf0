"""The one description of a model's inputs and outputs that inspect writes and every later stage reads."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Dim = int | str  # a str is a dynamic dimension: its symbolic name, or "?" when it has none


class TensorKind(StrEnum):
    """What a value is: a tensor, or one of the non-tensor values ONNX allows (a ZipMap output is a sequence)."""
    TENSOR = "tensor"
    SEQUENCE = "sequence"
    MAP = "map"
    OPTIONAL = "optional"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Quantization:
    scale: list[float]
    zero_point: list[int]
    axis: int | None = None  # None: per-tensor


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[Dim]
    dtype: str
    quantization: Quantization | None = None
    kind: TensorKind = TensorKind.TENSOR
    description: str = ""  # a non-tensor value in words, e.g. "a sequence of maps from int64 to float"

    @property
    def dynamic(self) -> bool:
        return any(isinstance(d, str) for d in self.shape)

    @property
    def dynamic_dims(self) -> list[tuple[int, str]]:
        """(axis, name) of each dynamic dimension."""
        return [(i, d) for i, d in enumerate(self.shape) if isinstance(d, str)]

    def shape_text(self) -> str:
        if self.kind != TensorKind.TENSOR:
            return self.description or self.kind.value
        return "[" + ", ".join(str(d) if not isinstance(d, str) or d == "?" else f"{d}?" for d in self.shape) + "]"
