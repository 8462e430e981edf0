"""Sweep grids: pruning ratios x quantization modes x targets over a base recipe, saved as TOML."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from studio.core.base.errors import RecipeError
from studio.core.recipe.recipe import PruneMethod, PruneScope, Pruning, QuantMode, Recipe, Target, read_toml

GRID_VERSION = 1
E = TypeVar("E", bound=Enum)


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
    """Every combination of targets x pruning ratios x quantization modes, over one base recipe."""
    targets: tuple[Target, ...] = (Target.ONNX,)
    quant: tuple[QuantMode, ...] = (QuantMode.NONE, QuantMode.DYNAMIC, QuantMode.INT8)
    prune: tuple[float, ...] = (0.0,)
    prune_method: PruneMethod = PruneMethod.STRUCTURED
    prune_scope: PruneScope = PruneScope.LAYER
    finetune_epochs: int = 0
    base: Recipe = field(default_factory=Recipe)

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(_choice(Target, t, "target") for t in self.targets))
        object.__setattr__(self, "quant", tuple(_choice(QuantMode, q, "quantization") for q in self.quant))
        object.__setattr__(self, "prune_method", _choice(PruneMethod, self.prune_method, "prune_method"))
        object.__setattr__(self, "prune_scope", _choice(PruneScope, self.prune_scope, "prune_scope"))
        object.__setattr__(self, "prune", tuple(float(r) for r in self.prune))
        if self.prune_method is PruneMethod.NONE:  # ratio 0 already means "not pruned"
            raise RecipeError("prune_method must be 'structured' or 'unstructured'")
        if not self.targets or not self.quant or not self.prune:
            raise RecipeError("a grid needs at least one target, one quantization mode and one pruning ratio")
        if any(not 0 <= r < 1 for r in self.prune):
            raise RecipeError("pruning ratios must be at least 0 and below 1")
        for seq, what in ((self.targets, "target"), (self.quant, "quantization"), (self.prune, "pruning ratio")):
            if len(set(seq)) != len(seq):
                raise RecipeError(f"a {what} is listed twice in the grid")

    @property
    def uses_structured_pruning(self) -> bool:
        return self.prune_method is PruneMethod.STRUCTURED and any(self.prune)

    def candidates(self) -> list[Candidate]:
        out = []
        for target in self.targets:
            for ratio in self.prune:
                for q in self.quant:
                    pruning = Pruning(self.prune_method, ratio, scope=self.prune_scope,
                                      finetune_epochs=self.finetune_epochs) if ratio else Pruning()
                    quant = dataclasses.replace(self.base.quantization, mode=q)
                    recipe = self.base.replace(target=target, pruning=pruning, quantization=quant)
                    label = "fp32" if q is QuantMode.NONE else q.value
                    out.append(Candidate(f"{target.value}-{label}-p{ratio:.2f}", recipe))
        return out

    def to_dict(self) -> dict:
        return {"schema_version": GRID_VERSION, "targets": [t.value for t in self.targets],
                "quant": [q.value for q in self.quant], "prune": list(self.prune),
                "prune_method": self.prune_method.value, "prune_scope": self.prune_scope.value,
                "finetune_epochs": self.finetune_epochs, "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict, source: str | None = None) -> Grid:
        doc = dict(doc)
        version = doc.pop("schema_version", GRID_VERSION)
        if version != GRID_VERSION:
            raise RecipeError(f"grid schema_version {version} is not supported (expected {GRID_VERSION})", source)
        unknown = set(doc) - {"targets", "quant", "prune", "prune_method", "prune_scope", "finetune_epochs",
                           "base"}
        if unknown:
            raise RecipeError(f"unknown grid key(s): {', '.join(sorted(unknown))}", source)
        try:
            base = Recipe.from_dict(doc.pop("base", {}), source)
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
            return cls(base=base, **values)
        except RecipeError as exc:
            raise RecipeError(exc.message, source) from None
        except (TypeError, ValueError) as exc:
            raise RecipeError(f"invalid grid: {exc}", source) from None

    @classmethod
    def load(cls, path: str | Path) -> Grid:
        return cls.from_dict(read_toml(path), str(path))


def _choice(enum: type[E], value, what: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = "', '".join(m.value for m in enum)
        raise RecipeError(f"unknown {what} '{value}' in the grid (one of '{allowed}')") from None
