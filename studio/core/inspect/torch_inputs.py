"""A PyTorch module's inputs: names from forward's signature (or the TorchScript graph), shapes and dtypes from what
the user gave (a module records neither)."""
from __future__ import annotations

import inspect
from collections.abc import Sequence

from studio.core.tensors.shapes import ShapeRequest
from studio.core.tensors.spec import TensorInfo, TensorKind


def forward_names(module) -> list[str]:
    """The inputs forward takes without a default, in order; ["input"] when its signature names none (*args)."""
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ["input"]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return names or ["input"]


def unknown(name: str, dtype: str = "float32") -> TensorInfo:
    return TensorInfo(name, ["?"], dtype, kind=TensorKind.UNKNOWN,
                      description=f"shape not recorded: give --input-shape {name}=...")


def declared(names: Sequence[str], shapes: ShapeRequest, dtypes: Sequence[str | None] = (),
             fallback: tuple[int, ...] | None = None) -> list[TensorInfo]:
    """One TensorInfo per input: at the shape given for it (else `fallback`, a named architecture's own input,
    for a single input), in the dtype given (else the file's, else float32); unknown where no shape is given."""
    out = []
    for k, name in enumerate(names):
        dims = shapes.lookup(name) if shapes else None
        dims = dims if dims is not None else (fallback if len(names) == 1 else None)
        dtype = shapes.dtype(name) or (dtypes[k] if k < len(dtypes) else None) or "float32"
        out.append(TensorInfo(name, list(dims), dtype) if dims is not None else unknown(name, dtype))
    return out


def zeros(inputs: Sequence[TensorInfo]) -> list:
    """Zeros at every (known) input's shape and dtype: what the module is run on to see its outputs."""
    import numpy as np
    import torch

    return [torch.from_numpy(np.zeros(tuple(int(d) for d in t.shape), np.dtype(t.dtype))) for t in inputs]


def all_known(inputs: Sequence[TensorInfo]) -> bool:
    return all(t.kind != TensorKind.UNKNOWN for t in inputs)
