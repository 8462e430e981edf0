"""The layers structured pruning must leave whole: those that make a model output (their channels are the
output's values) and grouped or depthwise convolutions (their channels are tied to their groups)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeptLayer:
    layer: str
    reason: str


def weighted_modules(module) -> dict[str, Any]:
    import torch

    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    return {name: m for name, m in module.named_modules() if isinstance(m, kinds)}


def output_layers(module, example) -> dict[str, int]:
    """{layer: output index} for the weighted layers nearest each model output along the autograd graph."""
    import torch

    layers = weighted_modules(module)
    made_by: dict[object, str] = {}  # grad_fn of a weighted layer's output -> the layer's name

    def hook(name):
        def seen(mod, args, out) -> None:  # returning None keeps the layer's output as it is
            if isinstance(out, torch.Tensor) and out.grad_fn is not None:
                made_by.setdefault(out.grad_fn, name)
        return seen

    hooks = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    try:
        with torch.enable_grad():
            out = module(*example)
    finally:
        for h in hooks:
            h.remove()
    outputs = out if isinstance(out, (tuple, list)) else [out]
    found: dict[str, int] = {}
    for i, o in enumerate(outputs):
        todo, seen = [getattr(o, "grad_fn", None)], set()
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in made_by:
                found.setdefault(made_by[fn], i)
                continue  # layers before this one feed it, not the output directly
            todo.extend(nxt for nxt, _ in fn.next_functions)
    return found


def protected_layers(module, example, keep: Sequence[str] = ()) -> list[KeptLayer]:
    """Every layer torch-pruning must ignore, with the reason in words."""
    kept = [KeptLayer(name, "kept by the recipe") for name in keep]
    names = set(keep)
    outputs = output_layers(module, example) or {name: 0 for name in list(weighted_modules(module))[-1:]}
    for name, index in outputs.items():
        if name not in names:
            kept.append(KeptLayer(name, f"makes output {index}"))
            names.add(name)
    for name, m in weighted_modules(module).items():
        groups = getattr(m, "groups", 1)
        if groups > 1 and name not in names:
            depthwise = groups == getattr(m, "in_channels", 0)
            kept.append(KeptLayer(name, "depthwise convolution" if depthwise else f"grouped convolution"
                                                                                  f" ({groups} groups)"))
    return kept
