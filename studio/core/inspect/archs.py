"""Architectures a state_dict can be loaded into: torchvision's, plus the studio's own sample network."""
from __future__ import annotations

from torch import nn

from studio.core.base.errors import ModelLoadError


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


def default_input_shape(name: str) -> tuple[int, ...]:
    if name in STUDIO_ARCHS:
        return STUDIO_ARCHS[name][1]
    return (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224)


def _classes_in(state_dict: dict) -> int | None:
    mats = [v for k, v in state_dict.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(mats[-1].shape[0]) if mats else None


def build(name: str, state_dict: dict | None = None) -> nn.Module:
    """An untrained `name` sized for `state_dict`'s classifier, with those weights loaded when given."""
    import torchvision

    num_classes = _classes_in(state_dict) if state_dict else None
    kwargs = {"num_classes": num_classes} if num_classes else {}
    if name in STUDIO_ARCHS:
        model = STUDIO_ARCHS[name][0](**kwargs)
    elif name in torchvision.models.list_models(module=torchvision.models):
        try:
            model = torchvision.models.get_model(name, weights=None, **kwargs)
        except (TypeError, ValueError):
            model = torchvision.models.get_model(name, weights=None)
    else:
        raise ModelLoadError(f"unknown architecture '{name}'; choose a torchvision classification model (e.g."
                             " resnet18, mobilenet_v2) or studio.mnist_cnn")
    if state_dict is not None:
        own = model.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            example = (missing or unexpected)[0]
            raise ModelLoadError(f"does not match --arch {name}: {len(missing)} missing and {len(unexpected)}"
                                 f" unexpected weights (e.g. '{example}')")
        bad = [k for k, v in state_dict.items() if getattr(v, "shape", None) != own[k].shape]
        if bad:
            raise ModelLoadError(f"does not match --arch {name}: weight '{bad[0]}' has shape"
                                 f" {list(state_dict[bad[0]].shape)}, the architecture expects"
                                 f" {list(own[bad[0]].shape)}")
        model.load_state_dict(state_dict)
    return model.eval()
