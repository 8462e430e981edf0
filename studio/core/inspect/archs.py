"""Architectures a state_dict can be loaded into: torchvision's, the studio's own sample network, and the user's own
class (`path/to/file.py:ClassName` or `package.module:ClassName`, built only with the user's consent)."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from studio.core.base.errors import ModelLoadError, short
from studio.core.inspect.arch_spec import TRUST_CODE_TEXT, ArchSpec, is_file_path


class Scale(nn.Module):
    """Multiply by a constant: puts 0-255 pixel scaling inside the model, so raw images are its input."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def mnist_cnn(num_classes: int = 10) -> nn.Module:
    """The sample CNN: raw 0-255 pixels [N,1,28,28] in, logits out."""
    return nn.Sequential(
        Scale(1 / 255.0),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )


STUDIO_ARCHS = {"studio.mnist_cnn": (mnist_cnn, (1, 1, 28, 28))}


def default_input_shape(spec: ArchSpec) -> tuple[int, ...] | None:
    """The input a named architecture takes; None for the user's own class (its shape must be given)."""
    if spec.user_code:
        return None
    if spec.name in STUDIO_ARCHS:
        return STUDIO_ARCHS[spec.name][1]
    return (1, 3, 299, 299) if spec.name == "inception_v3" else (1, 3, 224, 224)


def _classes_in(state_dict: dict) -> int | None:
    mats = [v for k, v in state_dict.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(mats[-1].shape[0]) if mats else None


def _import(where: str):
    """The module `where` names: a .py file (imported by its path, so worker processes can import it too) or a
    dotted module importable here."""
    if is_file_path(where):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ModelLoadError(f"--arch names {where}, which is not a file", where)
        name = f"studio_user_arch_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ModelLoadError("--arch needs a Python source file (.py)", path)
        module = importlib.util.module_from_spec(loader_spec)
        if str(path.parent) not in sys.path:  # so the file can import its neighbours
            sys.path.insert(0, str(path.parent))
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
            del sys.modules[name]
            raise ModelLoadError(f"importing it for --arch failed: {short(exc)}", path) from None
        return module
    try:
        return importlib.import_module(where)
    except Exception as exc:  # noqa: BLE001 - ModuleNotFoundError, or whatever the module raises on import
        raise ModelLoadError(f"--arch names module '{where}', which cannot be imported here: {short(exc)}") from None


def _user_module(spec: ArchSpec) -> nn.Module:
    if not spec.trust_code:
        raise ModelLoadError(f"--arch {spec.name} is your own Python code and {TRUST_CODE_TEXT}: pass --trust-code"
                             " to allow it")
    where, _, class_name = spec.name.rpartition(":")
    if not where or not class_name:
        raise ModelLoadError(f"--arch '{spec.name}' should look like path/to/file.py:ClassName or"
                             " package.module:ClassName")
    cls = getattr(_import(where), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelLoadError(f"--arch: {where} has no nn.Module class named '{class_name}'")
    try:
        return cls(**spec.kwargs())
    except Exception as exc:  # noqa: BLE001 - the user's constructor may raise anything
        raise ModelLoadError(f"--arch: {class_name}(**{spec.kwargs()}) failed: {short(exc)}; give its keyword"
                             " arguments with --arch-args") from None


def _named_module(spec: ArchSpec, state_dict: dict | None) -> nn.Module:
    import torchvision

    num_classes = _classes_in(state_dict) if state_dict else None
    kwargs = {"num_classes": num_classes} if num_classes else {}
    kwargs.update(spec.kwargs())
    if spec.name in STUDIO_ARCHS:
        return STUDIO_ARCHS[spec.name][0](**kwargs)
    if spec.name in torchvision.models.list_models(module=torchvision.models):
        try:
            return torchvision.models.get_model(spec.name, weights=None, **kwargs)
        except (TypeError, ValueError):
            return torchvision.models.get_model(spec.name, weights=None, **spec.kwargs())
    raise ModelLoadError(f"unknown architecture '{spec.name}'; choose a torchvision classification model (e.g."
                         " resnet18, mobilenet_v2), studio.mnist_cnn, or your own class as path/to/file.py:ClassName")


def _first(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return f"{shown}, ..." if len(keys) > n else shown


def _load_weights(model: nn.Module, spec: ArchSpec, state_dict: dict) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        parts = ([f"{len(missing)} missing ({_first(missing)})"] if missing else []) + (
            [f"{len(unexpected)} unexpected ({_first(unexpected)})"] if unexpected else [])
        raise ModelLoadError(f"does not match --arch {spec.name}: weights {' and '.join(parts)}")
    bad = [k for k, v in state_dict.items() if getattr(v, "shape", None) != own[k].shape]
    if bad:
        raise ModelLoadError(f"does not match --arch {spec.name}: weight '{bad[0]}' has shape"
                             f" {list(state_dict[bad[0]].shape)}, the architecture expects {list(own[bad[0]].shape)}")
    model.load_state_dict(state_dict)


def build(spec: ArchSpec, state_dict: dict | None = None) -> nn.Module:
    """An untrained `spec` (sized for `state_dict`'s classifier when it is a named one), with those weights loaded
    when given."""
    model = _user_module(spec) if spec.user_code else _named_module(spec, state_dict)
    if state_dict is not None:
        _load_weights(model, spec, state_dict)
    return model.eval()
