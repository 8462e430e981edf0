"""What a Ray task does on a cluster node: unpack the sweep's files into a node-local cache (once per node, by content),
move the task's paths there, run the usual worker job (a crash stays a candidate's failure), and send the results back
with the node's name. Nothing here imports ray at module level."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.core.base.errors import StudioError
from studio.core.base.jobs import run_job
from studio.core.base.versions import library_versions
from studio.core.inspect.arch_spec import ArchSpec
from studio.core.measure.evaluate import measure_latency
from studio.core.measure.latency import LatencyOptions
from studio.core.optimize.stage import FloatStage, StageRequest, float_stage
from studio.core.sweep import eval_data
from studio.core.sweep.jobs import CandidateJob, candidate_job

Pack = dict[str, bytes]  # a file or folder as {relative path: content}; "" is the file itself


def pack(path: str, only: tuple[str, ...] = ()) -> bytes:
    """A file or folder (of it, only the files `only` when given) as one pickled Pack, for the object store."""
    p = Path(path)
    if p.is_file():
        files: Pack = {"": p.read_bytes()}
    else:
        chosen = [Path(f) for f in only] if only else [f for f in sorted(p.rglob("*")) if f.is_file()]
        files = {f.relative_to(p).as_posix(): f.read_bytes() for f in chosen}
    return pickle.dumps(files, protocol=pickle.HIGHEST_PROTOCOL)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def unpack(data: bytes, dest: Path) -> None:
    files: Pack = pickle.loads(data)
    for rel, content in files.items():
        target = dest / rel if rel else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@dataclass(frozen=True)
class Shipped:
    """A path of this machine that the sweep put into the object store once: its content digest and its object."""
    digest: str
    ref: list  # [ObjectRef]: in a list, so Ray hands the task the reference and the node fetches it only when needed


def _cache() -> Path:
    folder = Path(tempfile.gettempdir()) / "studio-cluster"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def materialize(local: str, shipped: Shipped) -> str:
    """The node's copy of a shipped path, unpacked once per node (later tasks find it by its digest)."""
    import ray

    home = _cache() / shipped.digest
    dest = home / (Path(local).name or "data")
    if not (home / ".complete").is_file():
        scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=_cache()))
        unpack(ray.get(shipped.ref[0]), scratch / dest.name)
        (scratch / ".complete").touch()
        try:
            os.rename(scratch, home)
        except OSError:  # another task on this node unpacked it first
            shutil.rmtree(scratch, ignore_errors=True)
    return str(dest)


def moved(path: str, roots: Mapping[str, str]) -> str:
    """`path` with the first root it lies in replaced by that root's new place."""
    for old, new in roots.items():
        if path == old or path.startswith(old.rstrip("/") + "/"):
            return new + path[len(old):]
    return path


def moved_arch(arch: ArchSpec | None, roots: Mapping[str, str]) -> ArchSpec | None:
    """The spec naming the node's copy of its `FILE.py` (a `package.module:Class` must be installed there)."""
    if arch is None or not arch.user_code:
        return arch
    where, _, class_name = arch.name.rpartition(":")
    return replace(arch, name=f"{moved(where, roots)}:{class_name}")


def moved_stage(stage: FloatStage, roots: Mapping[str, str]) -> FloatStage:
    return replace(stage, float_path=moved(stage.float_path, roots),
                   quantized={m: moved(p, roots) for m, p in stage.quantized.items()})


def node_name() -> str:
    import ray

    return f"{socket.gethostname()} ({ray.get_runtime_context().get_node_id()[:8]})"


def version_differences(expected: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """'name: A here, B there' for each library whose version differs (or is missing on one side)."""
    return [f"{k}: {expected.get(k, 'absent')} here, {found.get(k, 'absent')} on the cluster"
            for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]


def node_versions() -> tuple[str, dict[str, str]]:
    return node_name(), library_versions()


def _check_versions(expected: Mapping[str, str]) -> None:
    diff = version_differences(expected, library_versions())
    if diff:
        raise StudioError(f"node {node_name()} has other library versions than this machine: {'; '.join(diff)}")


@dataclass(frozen=True, eq=False)
class StageTask:
    request: StageRequest  # paths of this machine
    shipped: Mapping[str, Shipped]  # local path -> its shipped copy (the model, the architecture's .py file)
    versions: Mapping[str, str]


def stage_on_node(task: StageTask) -> tuple[FloatStage | StudioError, bytes, str]:
    """Build a group's float stage on this node; returns it with this machine's paths, its folder packed, and the
    node's name."""
    name = node_name()
    work = Path(tempfile.mkdtemp(prefix="stage-", dir=_cache()))
    try:
        _check_versions(task.versions)
        r = task.request
        roots = {local: materialize(local, s) for local, s in task.shipped.items()}
        request = replace(r, model=moved(r.model, roots), work=work, arch=moved_arch(r.arch, roots))
        stage = float_stage(request).summary()
        back = {str(work): str(r.work), **{new: old for old, new in roots.items()}}
        return moved_stage(stage, back), pack(str(work)), name
    except StudioError as exc:
        return exc, b"", name
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True, eq=False)
class CandidateTask:
    job: CandidateJob  # paths of this machine
    shipped: Mapping[str, Shipped]  # the model, the data and the group's stage folder
    versions: Mapping[str, str]
    remaining_s: float | None  # the budget left (clocks differ between machines)
    timing: LatencyOptions | None  # time it on this node with these options (--latency-on cluster), or None
    what: str


@dataclass(frozen=True, eq=False)
class NodeCandidate:
    outcome: Any  # CandidateOutcome, or the StudioError that failed it
    model: bytes
    node: str
    latency: dict[str, Any] | None


def candidate_on_node(task: CandidateTask) -> NodeCandidate:
    name = node_name()
    out_dir = Path(tempfile.mkdtemp(prefix="candidate-", dir=_cache()))
    try:
        _check_versions(task.versions)
        roots = {local: materialize(local, s) for local, s in task.shipped.items()}
        j = task.job
        out = str(out_dir / Path(j.out).name)
        deadline = None if task.remaining_s is None else time.monotonic() + task.remaining_s
        job = replace(j, stage=moved_stage(j.stage, roots), data_path=moved(j.data_path, roots), out=out,
                      deadline=deadline)
        outcome = run_job(candidate_job, job, what=task.what)
        latency = None
        if task.timing is not None:
            first = eval_data.read(job.data_path, job.inputs).samples.head(1)
            latency = run_job(measure_latency, out, first, task.timing, what=f"latency of {task.what}")
        return NodeCandidate(outcome, Path(out).read_bytes(), name, latency)
    except StudioError as exc:
        return NodeCandidate(exc, b"", name, None)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
