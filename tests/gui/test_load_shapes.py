"""The Load page with a model whose dims are open (a Paddle-style detector, N x 3 x H x W): it names the open dims,
takes the shape the user types, refuses a wrong input name in one line, and the sweep then runs at that shape."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tests.core.real_shapes import paddle_detector
from tests.gui.conftest import wait_idle


def _detector_window(make_window, tmp_path):
    from studio.core.app.project import ModelChoice, Project, SweepSettings
    from studio.core.recipe.grid import Grid

    model = paddle_detector(tmp_path / "det.onnx")
    grid = Grid(targets=("onnx",), quant=("none",), prune=(0.0,))
    project = Project(path=str(tmp_path / "p.studio.json"), model=ModelChoice(model),
                      sweep=SweepSettings(grid=grid, sensitivity=False))
    return make_window(project), model


def _type_shapes(w, text: str) -> None:
    w.load.shapes.setText(text)
    w.load.shapes.editingFinished.emit()


def test_open_dims_are_named_and_a_wrong_input_name_is_one_line(make_window, tmp_path):
    w, _ = _detector_window(make_window, tmp_path)
    assert w.load.info is not None and [t.name for t in w.load.info.inputs] == ["x"]
    assert w.load.shapes.placeholderText() == "x=?,3,?,?"
    assert "Dynamic dims" in w.load.io.text()
    _type_shapes(w, "image=1,3,48,64")
    banner = w.load.banner.text()
    assert w.load.banner.property("kind") == "error" and "image" in banner and "x" in banner
    assert "\n" not in banner and w.project.model.input_shapes == ()


def test_the_shape_typed_on_the_load_page_is_the_one_the_sweep_measures_at(make_window, qtbot, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr("studio.core.app.project.runs_dir", lambda: tmp_path / "runs")
    w, model = _detector_window(make_window, tmp_path)
    _type_shapes(w, "x=1,3,48,64")
    assert w.project.model.input_shapes == ("x=1,3,48,64",)
    w.run_sweep()
    wait_idle(qtbot, w, 600)
    [cand] = w.preview.candidates.values()
    assert cand.status == "ok", cand
    run = next(Path(tmp_path / "runs").rglob("results.json")).parent
    [given] = json.loads((run / "results.json").read_text())["reference"]["inputs"]
    assert (given["name"], given["shape"], given["from"]) == ("x", [1, 3, 48, 64], "--input-shape")
    with np.load(run / "work" / "data.npz") as data:  # what evaluation and the latency timing are fed
        assert data["eval000"].shape[1:] == (3, 48, 64)
        reference = ort.InferenceSession(model).run(None, {"x": data["eval000"][:1]})[0]
        assert data["ref_out000"][0].shape == reference[0].shape == (1, 48, 64)  # the source ran at that shape
