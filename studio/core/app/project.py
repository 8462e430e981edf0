"""The studio session as a file: model, recipe, sweep, chosen candidate, export and deploy choices.

Saved atomically after every change (`*.studio.json`, with schema_version and a tested migration), so a crash
loses nothing; measurements themselves live in the sweep's run folder and journal."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.base import atomic
from studio.core.base.errors import StudioError
from studio.core.base.paths import data_dir

PROJECT_VERSION = 2


class ProjectError(StudioError):
    """A project file cannot be read."""


@dataclass
class Project:
    model: str | None = None
    arch: str | None = None
    trust_pickle: bool = False
    dataset: str | None = None
    train_dataset: str | None = None
    labels: str | None = None
    recipe: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    max_drop: float | None = None
    budget_min: float | None = None
    sensitivity: bool = True
    sweep_device: str | None = None  # also time each candidate on this device
    run_dir: str | None = None
    chosen: str | None = None
    export: dict = field(default_factory=dict)  # name, version, labels, sign_key, bundle, verified
    deploy: dict = field(default_factory=dict)  # devices (names), last results
    path: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        doc = dataclasses.asdict(self)
        doc.pop("path")
        return {"schema_version": PROJECT_VERSION, **doc}

    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path or self.path or default_path())
        atomic.write_json(target, self.to_dict())
        self.path = str(target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> Project:
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProjectError("project file not found", p) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProjectError(f"not a project file ({exc})", p) from None
        doc = migrate(doc, p)
        names = {f.name for f in dataclasses.fields(cls)} - {"path"}
        project = cls(**{k: v for k, v in doc.items() if k in names})
        project.path = str(p)
        return project


def migrate(doc: dict, where) -> dict:
    """Version 1 kept the sweep as `sweep: {run, chosen}` and the bundle path at the top level."""
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version > PROJECT_VERSION:
        raise ProjectError(f"project schema_version {version} is newer than this studio ({PROJECT_VERSION})", where)
    if version == 1:
        sweep = doc.pop("sweep", {}) or {}
        doc.setdefault("run_dir", sweep.get("run"))
        doc.setdefault("chosen", sweep.get("chosen"))
        if "bundle" in doc:
            doc.setdefault("export", {})["bundle"] = doc.pop("bundle")
    doc.pop("schema_version", None)
    return doc


def default_path() -> Path:
    return data_dir() / "projects" / "last.studio.json"


def runs_dir() -> Path:
    return data_dir() / "runs"
