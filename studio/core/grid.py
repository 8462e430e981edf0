"""Sweep grids: pruning ratios x quantization modes x targets over a base recipe, saved as TOML."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RecipeError
from .recipe import PruneMethod, Pruning, QuantMode, Recipe, Target, read_toml

GRID_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    id: str
    recipe: Recipe

    @property
    def group(self) -> tuple[str, float]:
        """Candidates with the same target and pruning share one float conversion."""
        return self.recipe.target.value, self.recipe.pruning.ratio


@dataclass(frozen=True)
class Grid:
    targets: tuple[str, ...] = ("onnx",)
    quant: tuple[str, ...] = ("none", "dynamic", "int8")
    prune: tuple[float, ...] = (0.0,)
    prune_method: str = "structured"
    finetune_epochs: int = 0
    base: Recipe = field(default_factory=Recipe)

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(Target(t).value if t in ("onnx", "tflite") else _bad("target", t)
                                                  for t in self.targets))
        object.__setattr__(self, "quant", tuple(QuantMode(q).value if q in [m.value for m in QuantMode]
                                                else _bad("quantization", q) for q in self.quant))
        object.__setattr__(self, "prune", tuple(float(r) for r in self.prune))
        if not self.targets or not self.quant or not self.prune:
            raise RecipeError("a grid needs at least one target, one quantization mode and one pruning ratio")
        if any(not 0 <= r < 1 for r in self.prune):
            raise RecipeError("pruning ratios must be at least 0 and below 1")
        if self.prune_method not in ("structured", "unstructured"):
            raise RecipeError("prune_method must be 'structured' or 'unstructured'")
        for seq, what in ((self.targets, "target"), (self.quant, "quantization"), (self.prune, "pruning ratio")):
            if len(set(seq)) != len(seq):
                raise RecipeError(f"a {what} is listed twice in the grid")

    def candidates(self) -> list[Candidate]:
        out = []
        for target in self.targets:
            for ratio in self.prune:
                for q in self.quant:
                    pruning = Pruning(self.prune_method, ratio, finetune_epochs=self.finetune_epochs) if ratio else \
                        Pruning()
                    quant = dataclasses.replace(self.base.quantization, mode=QuantMode(q))
                    recipe = self.base.replace(target=Target(target), pruning=pruning, quantization=quant)
                    label = "fp32" if q == "none" else q
                    out.append(Candidate(f"{target}-{label}-p{ratio:.2f}", recipe))
        return out

    def to_dict(self) -> dict:
        return {"schema_version": GRID_VERSION, "targets": list(self.targets), "quant": list(self.quant),
                "prune": list(self.prune), "prune_method": self.prune_method,
                "finetune_epochs": self.finetune_epochs, "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict, source: str | None = None) -> "Grid":
        doc = dict(doc)
        version = doc.pop("schema_version", GRID_VERSION)
        if version != GRID_VERSION:
            raise RecipeError(f"grid schema_version {version} is not supported (expected {GRID_VERSION})", source)
        unknown = set(doc) - {"targets", "quant", "prune", "prune_method", "finetune_epochs", "base"}
        if unknown:
            raise RecipeError(f"unknown grid key(s): {', '.join(sorted(unknown))}", source)
        try:
            base = Recipe.from_dict(doc.pop("base", {}), source)
            return cls(base=base, **{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})
        except RecipeError as exc:
            raise RecipeError(exc.message, source) from None
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"invalid grid: {exc}", source) from None

    @classmethod
    def load(cls, path: str | Path) -> "Grid":
        return cls.from_dict(read_toml(path), str(path))


def _bad(what, value):
    raise RecipeError(f"unknown {what} '{value}' in the grid")


def uses_structured(grid: Grid) -> bool:
    return grid.prune_method == PruneMethod.STRUCTURED.value and any(grid.prune)
