"""The studio session as a file: model, sweep settings, chosen candidate, export and deploy choices.

Saved atomically after every change (`*.studio.json`, with schema_version and a tested migration), so a crash
loses nothing; measurements themselves live in the sweep's run folder and journal. Each section is a frozen
record: a page emits a new one and the window puts it in the project."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.base import atomic
from studio.core.base.errors import StudioError
from studio.core.base.paths import data_dir
from studio.core.deploy.push import PushResult, PushStatus
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.recipe.grid import Grid
from studio.core.recipe.recipe import QuantMode, Target
from studio.core.tensors.shapes import ShapeRequest

if TYPE_CHECKING:
    from studio.core.sweep.sweep import SweepOptions

PROJECT_VERSION = 3


class ProjectError(StudioError):
    """A project file cannot be read."""


def default_grid() -> Grid:
    """What a new session offers to sweep: both runtimes, float and the two int8 modes."""
    return Grid(targets=(Target.ONNX, Target.TFLITE), quant=(QuantMode.NONE, QuantMode.DYNAMIC, QuantMode.INT8))


@dataclass(frozen=True)
class ModelChoice:
    """The model file and how to open it."""
    path: str | None = None
    arch: str | None = None  # the architecture a state_dict belongs to (a name, or FILE.py:Class)
    trust_pickle: bool = False
    input_shapes: tuple[str, ...] = ()  # --input-shape values ("x=1,3,320,320"): the dims the model leaves open
    arch_args: str | None = None  # the architecture's keyword arguments, a JSON object
    trust_code: bool = False  # the user allows code of their own to run (an architecture, a metric)

    def __post_init__(self):
        object.__setattr__(self, "input_shapes", tuple(str(s) for s in self.input_shapes or ()))

    @property
    def shapes(self) -> ShapeRequest:
        return ShapeRequest.parse(self.input_shapes)

    def arch_spec(self) -> ArchSpec | None:
        """The architecture as the core takes it; ModelLoadError when arch_args is not a JSON object."""
        return ArchSpec.of(self.arch, self.arch_args, self.trust_code) if self.arch else None


@dataclass(frozen=True)
class SweepSettings:
    """What the Optimize page sets: the grid, the data and the bounds of one sweep."""
    grid: Grid = field(default_factory=default_grid)
    dataset: str | None = None
    train_dataset: str | None = None  # labelled data for recovery fine-tuning after pruning
    max_drop: float | None = None  # accuracy points; None: no bound
    budget_min: float | None = None  # minutes; None: no budget
    sensitivity: bool = True
    device: str | None = None  # also time each candidate on this inventory device
    score_output: str | None = None  # the output that scores a candidate; None: the class-score one, else the first
    metric: str | None = None  # accuracy, agreement, cosine, sqnr or FILE.py:FUNCTION; None: what fits the data
    min_fidelity: str | None = None  # the quality gate, "agreement=90,cosine=0.95,sqnr=10"; None: these defaults
    cluster: str | None = None  # the address of a Ray cluster's head that builds the candidates; None: this machine

    def __post_init__(self):
        for name in ("max_drop", "budget_min"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ProjectError(f"sweep {name} must not be negative, not {value}")

    def options(self, model: ModelChoice) -> SweepOptions:
        """The sweep's options for this model (device and threads are also what the device bench needs)."""
        from studio.core.sweep.executor import ClusterOptions
        from studio.core.sweep.sweep import SweepOptions  # the sweep's import of numpy waits for a sweep

        return SweepOptions(cluster=ClusterOptions(self.cluster) if self.cluster else None,
                            workers=0 if self.cluster else 2,
                            max_drop=self.max_drop, budget_s=self.budget_min * 60 if self.budget_min else None,
                            sensitivity=self.sensitivity, arch=model.arch_spec(), trust_pickle=model.trust_pickle,
                            finetune=self.train_dataset if self.grid.finetune_epochs else None,
                            threads=self.grid.base.runtime.threads, device=self.device, shapes=model.shapes,
                            scoring=self.scoring(), trust_code=model.trust_code)

    def scoring(self):
        """The sweep's Scoring (RecipeError, one line, when the gate is written wrong)."""
        from studio.core.measure.fidelity import Floors, Scoring

        return Scoring(output=self.score_output, metric=self.metric, floors=Floors.parse(self.min_fidelity))

    def to_dict(self) -> dict[str, Any]:
        return {**_fields(self), "grid": self.grid.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SweepSettings:
        grid = Grid.from_dict(doc["grid"]) if doc.get("grid") else default_grid()
        return cls(**{**_known(cls, doc), "grid": grid})


@dataclass(frozen=True)
class ChosenCandidate:
    """The sweep's run folder and the candidate picked in Preview."""
    run_dir: str | None = None
    candidate: str | None = None


@dataclass(frozen=True)
class ExportSettings:
    """What the Export page sets."""
    name: str = ""
    version: str = "1.0.0"
    labels: str | None = None
    sign_key: str | None = None
    out: str = ""


@dataclass(frozen=True)
class ExportedBundle:
    """The last bundle written and verified."""
    path: str
    id: str = ""
    verified: bool = False


@dataclass(frozen=True)
class PushOutcome:
    """One device's result of the last push: the words the technician saw and the technical reason behind them."""
    device: str
    status: PushStatus
    message: str = ""
    running: str | None = None
    detail: str | None = None  # the technical reason, for engineers
    bundle: str | None = None  # the id of the bundle pushed
    bytes_sent: int = 0

    def __post_init__(self):
        object.__setattr__(self, "status", PushStatus(self.status))

    @classmethod
    def of(cls, result: PushResult) -> PushOutcome:
        return cls(result.device, result.status, result.message, result.running, detail=result.detail,
                   bundle=result.bundle, bytes_sent=result.bytes_sent)


@dataclass(frozen=True)
class DeploySettings:
    devices: tuple[str, ...] = ()  # the devices ticked for the next push
    last: tuple[PushOutcome, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "last", tuple(self.last))

    def to_dict(self) -> dict[str, Any]:
        return {"devices": list(self.devices), "last": [_fields(o) for o in self.last]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DeploySettings:
        return cls(devices=tuple(doc.get("devices") or ()),
                   last=tuple(PushOutcome(**_known(PushOutcome, row)) for row in doc.get("last") or ()))


@dataclass
class Project:
    """The session: one frozen record per section, replaced whole when a page changes it."""
    model: ModelChoice = field(default_factory=ModelChoice)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    chosen: ChosenCandidate = field(default_factory=ChosenCandidate)
    export: ExportSettings = field(default_factory=ExportSettings)
    bundle: ExportedBundle | None = None
    deploy: DeploySettings = field(default_factory=DeploySettings)
    path: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": PROJECT_VERSION, "model": _fields(self.model), "sweep": self.sweep.to_dict(),
                "chosen": _fields(self.chosen), "export": _fields(self.export),
                "bundle": _fields(self.bundle) if self.bundle else None, "deploy": self.deploy.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: Any = None) -> Project:
        doc = migrate(doc, where)
        try:
            bundle = doc.get("bundle")
            return cls(model=ModelChoice(**_known(ModelChoice, doc.get("model") or {})),
                       sweep=SweepSettings.from_dict(doc.get("sweep") or {}),
                       chosen=ChosenCandidate(**_known(ChosenCandidate, doc.get("chosen") or {})),
                       export=ExportSettings(**_known(ExportSettings, doc.get("export") or {})),
                       bundle=ExportedBundle(**_known(ExportedBundle, bundle)) if bundle else None,
                       deploy=DeploySettings.from_dict(doc.get("deploy") or {}))
        except StudioError as exc:
            raise ProjectError(f"invalid project: {exc.message}", where) from None
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ProjectError(f"invalid project: {exc}", where) from None

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
        if not isinstance(doc, dict):
            raise ProjectError("not a project file (not a JSON object)", p)
        project = cls.from_dict(doc, p)
        project.path = str(p)
        return project


def migrate(doc: dict[str, Any], where: Any) -> dict[str, Any]:
    """Bring an older project document to the current version, one step at a time."""
    doc = dict(doc)
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ProjectError(f"project schema_version {version!r} is not a version", where)
    if version > PROJECT_VERSION:
        raise ProjectError(f"project schema_version {version} is newer than this studio ({PROJECT_VERSION})", where)
    if version == 1:
        doc = _from_1(doc)
    if version <= 2:
        doc = _from_2(doc)
    doc["schema_version"] = PROJECT_VERSION
    return doc


def _from_1(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept the sweep as `sweep: {run, chosen}` and the bundle path at the top level."""
    sweep = doc.pop("sweep", {}) or {}
    doc.setdefault("run_dir", sweep.get("run"))
    doc.setdefault("chosen", sweep.get("chosen"))
    if "bundle" in doc:
        doc.setdefault("export", {})["bundle"] = doc.pop("bundle")
    return doc


def _from_2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2 was flat (model, arch, dataset, grid, ... at the top level) with `export` and `deploy` dicts that
    mixed settings and results; its `recipe` and `labels` keys were never read."""
    export = dict(doc.get("export") or {})
    deploy = doc.get("deploy") or {}
    bundle = export.pop("bundle", None)
    return {"model": {"path": doc.get("model"), "arch": doc.get("arch"),
                      "trust_pickle": doc.get("trust_pickle", False)},
            "sweep": {"grid": doc.get("grid") or None, "dataset": doc.get("dataset"),
                      "train_dataset": doc.get("train_dataset"), "max_drop": doc.get("max_drop"),
                      "budget_min": doc.get("budget_min"), "sensitivity": doc.get("sensitivity", True),
                      "device": doc.get("sweep_device")},
            "chosen": {"run_dir": doc.get("run_dir"), "candidate": doc.get("chosen")},
            "export": {k: v for k, v in export.items() if k in _names(ExportSettings) and v is not None},
            "bundle": {"path": bundle, "id": export.get("id", ""), "verified": bool(export.get("verified"))}
            if bundle else None,
            "deploy": {"devices": deploy.get("devices") or [], "last": deploy.get("last") or []}}


def _names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _known(cls: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The keys of doc that are fields of cls (a newer studio's extra keys are ignored)."""
    return {k: v for k, v in doc.items() if k in _names(cls)}


def _fields(record: Any) -> dict[str, Any]:
    """A flat record's fields as JSON values (enums as their strings)."""
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def default_path() -> Path:
    return data_dir() / "projects" / "last.studio.json"


def runs_dir() -> Path:
    return data_dir() / "runs"
