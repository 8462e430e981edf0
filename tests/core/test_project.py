"""The project file: the whole session survives a restart, old files migrate, bad files get a clear error."""
from __future__ import annotations

import json

import pytest

from studio.core.app.project import PROJECT_VERSION, Project, ProjectError


def test_round_trip_keeps_every_choice(tmp_path):
    p = Project(model="/m.onnx", dataset="/d.npz", grid={"targets": ["onnx"]}, max_drop=1.5, run_dir="/runs/a",
                chosen="onnx-int8-p0.00", export={"name": "n", "bundle": "/b.bundle.zip"},
                deploy={"devices": ["pi"]})
    path = p.save(tmp_path / "s.studio.json")
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == PROJECT_VERSION and "path" not in doc
    again = Project.load(path)
    assert again == p and again.path == str(path)
    assert not list(tmp_path.glob("*.tmp*"))  # written under a temporary name, then renamed


def test_version_1_files_migrate(tmp_path):
    path = tmp_path / "old.studio.json"
    path.write_text(json.dumps({"model": "/m.onnx", "sweep": {"run": "/runs/x", "chosen": "c1"},
                                "bundle": "/b.zip"}))
    p = Project.load(path)
    assert (p.model, p.run_dir, p.chosen, p.export["bundle"]) == ("/m.onnx", "/runs/x", "c1", "/b.zip")


@pytest.mark.parametrize("content, words", [("{not json", "not a project file"),
                                            (json.dumps({"schema_version": 99}), "newer than this studio")])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, words):
    path = tmp_path / "bad.studio.json"
    path.write_text(content)
    with pytest.raises(ProjectError) as err:
        Project.load(path)
    line = err.value.one_line()
    assert "bad.studio.json" in line and words in line and "\n" not in line


def test_missing_file(tmp_path):
    with pytest.raises(ProjectError, match="not found"):
        Project.load(tmp_path / "gone.studio.json")
