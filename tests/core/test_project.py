"""The project file: the whole session survives a restart, old files migrate, bad files get a clear error."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import pytest

from studio.core.app import work
from studio.core.app.project import (
    PROJECT_VERSION,
    ChosenCandidate,
    DeploySettings,
    ExportedBundle,
    ExportSettings,
    ModelChoice,
    Project,
    ProjectError,
    PushOutcome,
    SweepSettings,
    default_grid,
)
from studio.core.deploy.push import PushStatus
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import QuantMode, Recipe, Runtime, Target
from studio.core.sweep.sweep import SweepOptions


def _full_project() -> Project:
    grid = Grid(targets=("onnx",), quant=("none", "int8"), prune=(0.0, 0.25), finetune_epochs=2)
    return Project(model=ModelChoice("/m.pt", arch="studio.mnist_cnn", trust_pickle=True),
                   sweep=SweepSettings(grid=grid, dataset="/d.npz", train_dataset="/t.npz", max_drop=1.5,
                                       budget_min=3, sensitivity=False, device="pi"),
                   chosen=ChosenCandidate("/runs/a", "onnx-int8-p0.00"),
                   export=ExportSettings(name="n", version="2.0.0", labels="/l.txt", sign_key="/k", out="/b.zip"),
                   bundle=ExportedBundle("/b.bundle.zip", id="n-2.0.0-abc", verified=True),
                   deploy=DeploySettings(devices=("pi", "demo"), last=(
                       PushOutcome("pi", PushStatus.INSTALLED, "Installed v2.0.0", "n 2.0.0"),)))


def test_round_trip_keeps_every_choice(tmp_path):
    p = _full_project()
    path = p.save(tmp_path / "s.studio.json")
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == PROJECT_VERSION == 3 and "path" not in doc
    assert doc["sweep"]["grid"]["targets"] == ["onnx"] and doc["deploy"]["last"][0]["status"] == "installed"
    again = Project.load(path)
    assert again == p and again.path == str(path)
    assert again.sweep.grid.targets == (Target.ONNX,) and again.deploy.last[0].status is PushStatus.INSTALLED
    assert not list(tmp_path.glob("*.tmp*"))  # written under a temporary name, then renamed


def test_a_new_project_offers_both_runtimes_and_round_trips_empty(tmp_path):
    p = Project()
    assert p.sweep.grid == default_grid()
    assert p.sweep.grid.targets == (Target.ONNX, Target.TFLITE)
    assert p.sweep.grid.quant == (QuantMode.NONE, QuantMode.DYNAMIC, QuantMode.INT8)
    assert Project.load(p.save(tmp_path / "e.studio.json")) == p


def test_version_2_files_migrate(tmp_path):
    """A file as studio wrote it before the sections were typed."""
    grid = Grid(targets=("tflite",), quant=("fp16",)).to_dict()
    v2 = {"schema_version": 2, "model": "/m.onnx", "arch": None, "trust_pickle": False, "dataset": "/d.npz",
          "train_dataset": None, "labels": "/l.txt", "recipe": {}, "grid": grid, "max_drop": 2.0,
          "budget_min": None, "sensitivity": True, "sweep_device": "demo", "run_dir": "/runs/x", "chosen": "c1",
          "export": {"name": "mnist", "version": "1.2.0", "labels": "/l.txt", "sign_key": None, "out": "/o.zip",
                     "bundle": "/o.zip", "verified": True, "id": "mnist-1.2.0-x"},
          "deploy": {"devices": ["demo"], "last": [{"device": "demo", "status": "unchanged", "message": "Already",
                                                    "running": "mnist 1.2.0", "bytes_sent": 0, "steps": []},
                                                   {"device": "pi", "status": "failed", "message": "Kept v1",
                                                    "bundle": "mnist-1.2.0-x", "detail": "smoke test: exit 3",
                                                    "bytes_sent": 4096, "running": "mnist 1.0.0"}]}}
    path = tmp_path / "v2.studio.json"
    path.write_text(json.dumps(v2))
    p = Project.load(path)
    assert p.model == ModelChoice("/m.onnx")
    assert p.sweep == SweepSettings(grid=Grid(targets=("tflite",), quant=("fp16",)), dataset="/d.npz", max_drop=2.0,
                                    device="demo")
    assert p.chosen == ChosenCandidate("/runs/x", "c1")
    assert p.export == ExportSettings(name="mnist", version="1.2.0", labels="/l.txt", out="/o.zip")
    assert p.bundle == ExportedBundle("/o.zip", id="mnist-1.2.0-x", verified=True)
    assert p.deploy == DeploySettings(("demo",), (
        PushOutcome("demo", PushStatus.UNCHANGED, "Already", "mnist 1.2.0"),
        PushOutcome("pi", PushStatus.FAILED, "Kept v1", "mnist 1.0.0", detail="smoke test: exit 3",
                    bundle="mnist-1.2.0-x", bytes_sent=4096)))
    # an empty v2 grid (never set) is the default grid, as the window showed it
    path.write_text(json.dumps({"schema_version": 2, "grid": {}}))
    assert Project.load(path).sweep.grid == default_grid()


def test_version_1_files_migrate(tmp_path):
    path = tmp_path / "old.studio.json"
    path.write_text(json.dumps({"model": "/m.onnx", "sweep": {"run": "/runs/x", "chosen": "c1"},
                                "bundle": "/b.zip"}))
    p = Project.load(path)
    assert (p.model.path, p.chosen.run_dir, p.chosen.candidate) == ("/m.onnx", "/runs/x", "c1")
    assert p.bundle == ExportedBundle("/b.zip")


@pytest.mark.parametrize("content, words", [("{not json", "not a project file"),
                                            ("[1, 2]", "not a project file"),
                                            (json.dumps({"schema_version": 99}), "newer than this studio"),
                                            (json.dumps({"schema_version": "x"}), "not a version"),
                                            (json.dumps({"schema_version": 3, "sweep": {"grid": {"targets": ["x"]}}}),
                                             "unknown target 'x'"),
                                            (json.dumps({"schema_version": 3, "sweep": {"max_drop": -1}}),
                                             "must not be negative")])
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


def test_sweep_options_follow_the_settings_and_the_model():
    grid = Grid(targets=("onnx",), quant=("none",), prune=(0.0, 0.5), finetune_epochs=3,
                base=Recipe(runtime=Runtime(threads=4)))
    s = SweepSettings(grid=grid, train_dataset="/t.npz", max_drop=1.0, budget_min=2.5, sensitivity=False,
                      device="pi")
    assert s.options(ModelChoice("/m.pt", arch="resnet18", trust_pickle=True)) == SweepOptions(
        max_drop=1.0, budget_s=150.0, sensitivity=False, arch=ArchSpec("resnet18"), trust_pickle=True,
        finetune="/t.npz", threads=4, device="pi")
    # no recovery epochs: the training data is not used; no budget: None
    bare = SweepSettings(train_dataset="/t.npz").options(ModelChoice("/m.onnx"))
    assert bare.finetune is None and bare.budget_s is None and bare.threads == 1


def test_run_folders_keep_the_key_they_had_when_options_were_dicts():
    """Run folders made before options were typed still resume: the key hashes the same JSON as then."""
    grid = Grid(targets=("onnx",), quant=("none", "int8"), base=Recipe(runtime=Runtime(threads=2)))
    s = SweepSettings(grid=grid, dataset="/d.npz", max_drop=1.0, budget_min=5, device="pi")
    options = s.options(ModelChoice("/models/m.pt", arch="resnet18"))
    old = json.dumps({"model": "/models/m.pt", "grid": grid.to_dict(), "data": "/d.npz",
                      "options": {"max_drop": 1.0, "arch": "resnet18", "trust_pickle": False, "finetune": None,
                                  "threads": 2, "device": "pi"}}, sort_keys=True)
    assert work.sweep_dir("/models/m.pt", grid, "/d.npz", options).name == \
        f"m-{hashlib.sha256(old.encode()).hexdigest()[:10]}"
    # the budget and the sensitivity study change no result: same folder; a tag or another bound: another one
    again = SweepSettings(grid=grid, dataset="/d.npz", max_drop=1.0, sensitivity=False, device="pi")
    same = work.sweep_dir("/models/m.pt", grid, "/d.npz", again.options(ModelChoice("/models/m.pt", "resnet18")))
    assert same.name == work.sweep_dir("/models/m.pt", grid, "/d.npz", options).name
    assert work.sweep_dir("/models/m.pt", grid, "/d.npz", options, tag="t").name != same.name
    assert work.sweep_dir("/models/m.pt", grid, "/d.npz", dataclasses.replace(options, max_drop=2.0)).name != \
        same.name


def test_push_outcome_keeps_what_the_technician_saw():
    from studio.core.deploy.push import PushResult

    r = PushResult(device="pi", status=PushStatus.FAILED, message="Check failed: kept v1", bundle="b-1",
                   running="b 0.9", detail="exit 3", bytes_sent=9)
    outcome = PushOutcome.of(r)
    assert outcome == PushOutcome("pi", PushStatus.FAILED, "Check failed: kept v1", "b 0.9", detail="exit 3",
                                  bundle="b-1", bytes_sent=9)
    # and it survives the project file
    p = Project(deploy=DeploySettings(("pi",), (outcome,)))
    assert Project.from_dict(json.loads(json.dumps(p.to_dict()))).deploy.last == (outcome,)


def test_the_demo_project_is_made_without_qt(tmp_path):
    """`studio demo --terminal` must work where PySide6 cannot be imported."""
    code = ("import sys; sys.modules['PySide6'] = None\n"
            "from studio.core.app.demo import demo_project\n"
            "import studio.commands.demo_cmd\n"
            "p = demo_project({'torch_model': '/m.pt', 'dataset': '/d.npz', 'train_dataset': '/t.npz',"
            " 'labels': '/l.txt'})\n"
            "print(len(p.sweep.grid.candidates()), p.deploy.devices, p.export.name,"
            " any(m.startswith('PySide6.') for m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, XDG_DATA_HOME=str(tmp_path)), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8", "('demo',)", "mnist-demo", "False"]
