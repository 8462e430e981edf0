"""The demo session: the sample MNIST model and data, a small grid that shows real trade-offs, the demo device.

Qt-free, so `studio demo --terminal` and the window start from the same project."""
from __future__ import annotations

from typing import Any

from studio.core.app.project import DeploySettings, ExportSettings, ModelChoice, Project, SweepSettings
from studio.core.base.paths import data_dir
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import QuantMode, Target

DEMO_GRID = Grid(targets=(Target.ONNX, Target.TFLITE), quant=(QuantMode.NONE, QuantMode.INT8), prune=(0.0, 0.25))


def demo_project(info: dict[str, Any]) -> Project:
    """The project for the samples `work.demo_setup` returns (paths of the model, data and labels)."""
    return Project(model=ModelChoice(path=info["torch_model"]),
                   sweep=SweepSettings(grid=DEMO_GRID, dataset=info["dataset"], train_dataset=info["train_dataset"],
                                       sensitivity=True),
                   export=ExportSettings(name="mnist-demo", version="1.0.0", labels=info["labels"],
                                         out=str(data_dir() / "bundles" / "mnist-demo-1.0.0.bundle.zip")),
                   deploy=DeploySettings(devices=("demo",)), path=str(data_dir() / "projects" / "demo.studio.json"))
