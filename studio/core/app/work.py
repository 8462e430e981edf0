"""The long jobs the window and `studio demo` share, as plain functions over the core (no Qt here).

Each takes the report/cancel (and on_event) arguments that a GUI task thread (studio.gui.tasks) or the terminal passes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.base.progress import ignore

if TYPE_CHECKING:
    from studio.core.monitor.records import CheckResult
    from studio.core.recipe.grid import Grid
    from studio.core.sweep.sweep import SweepOptions


# The options that choose the run folder: the time budget and the sensitivity study change no candidate's result,
# so a sweep re-run with another budget resumes in the same folder; workers were never keyed. Input shapes and the
# scoring join the key only when set, so the folders of earlier sweeps keep their names.
_KEYED = ("max_drop", "arch", "trust_pickle", "finetune", "threads", "device")


def sweep_dir(model: str, grid: Grid, dataset: str | None, options: SweepOptions, *, tag: str | None = None) -> Path:
    """The same model, grid, data and options (and tag) always map to the same run folder, so re-running resumes."""
    from studio.core.app.project import runs_dir
    from studio.core.measure.fidelity import Scoring

    keyed: dict[str, object] = {k: getattr(options, k) for k in _KEYED}
    if options.shapes:
        keyed["input_shape"] = options.shapes.texts()
    if options.scoring != Scoring():
        keyed["scoring"] = dataclasses.asdict(options.scoring)
    if options.arch is not None:
        keyed["arch"] = options.arch.record()  # a plain name keys as before: older run folders still resume
    if tag is not None:
        keyed["tag"] = tag
    key = json.dumps({"model": os.path.abspath(model), "grid": grid.to_dict(),
                      "data": dataset and os.path.abspath(dataset), "options": keyed}, sort_keys=True)
    return runs_dir() / f"{Path(model).stem}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def sweep(model: str, grid: Grid, dataset: str | None, run_dir: str, options: SweepOptions, *, report=ignore,
          cancel=None, on_event=None) -> dict:
    """Run (or resume) the sweep in run_dir; events are studio.core.sweep.records' CandidateFinished,
    SensitivityReady and SweepFinished."""
    from studio.core.sweep.sweep import run_sweep

    device_bench = None
    if options.device:
        from studio.core.deploy.bench import sweep_bench

        device_bench = sweep_bench(options.device, threads=options.threads)
    return run_sweep(model, grid, dataset, run_dir, options=options, report=report, cancel=cancel,
                     on_event=on_event, device_bench=device_bench)


def export(source: str, out: str, *, name: str, version: str, labels: str | None, sign_key: str | None,
           dataset: str | None, report=ignore, cancel=None) -> dict:
    """Write the bundle, then verify it from disk as a device would (with the public key when signed)."""
    from studio.core.bundle.bundle import (
        build_bundle,
        bundle_check_set,
        bundle_sample,
        read_labels,
        resolve_source,
        verify_bundle,
    )

    report(0.05, "reading the model")
    src = resolve_source(source)
    sample = bundle_sample(src, dataset)
    report(0.15, "measuring the check set")
    checks = bundle_check_set(src, dataset)
    report(0.3, "writing the bundle")
    manifest = build_bundle(src, out, name=name, version=version, labels=read_labels(labels) if labels else None,
                            sign_key=sign_key, sample=sample, checks=checks)
    report(0.8, "verifying the bundle")
    pub = f"{sign_key}.pub" if sign_key and Path(f"{sign_key}.pub").is_file() else None
    verified = verify_bundle(out, pub)
    report(1.0, "verified")
    return {"manifest": manifest, "bundle": out, "signature_checked": verified.signature_checked,
            "key_fingerprint": verified.key_fingerprint, "files": len(verified.manifest["files"])}


def verify(bundle: str, pubkey: str | None = None, *, report=ignore, cancel=None):
    """As `studio verify`: against the publisher key, else against the keys the user trusts."""
    from studio.core.bundle import trust
    from studio.core.bundle.bundle import verify_bundle

    return verify_bundle(bundle, pubkey, trusted=() if pubkey else trust.load())


def push(bundle: str, names: list[str], *, report=ignore, cancel=None, on_event=None, concurrency: int = 4):
    """Push to the named devices; each device's progress arrives as an event {device, fraction, message}."""
    from studio.core.deploy import fleet, inventory

    devices = inventory.select(names=names)
    fractions: dict[str, float] = {}

    def progress(name, fraction, message):
        fractions[name] = fraction
        report(sum(fractions.values()) / len(devices), f"{name}: {message}")
        if on_event:
            on_event({"device": name, "fraction": fraction, "message": message})

    return fleet.push(bundle, devices, concurrency=concurrency, progress=progress, cancel=cancel)


def statuses(*, report=ignore, cancel=None) -> list[dict]:
    from studio.core.deploy import inventory, ops

    devices = sorted(inventory.load().values(), key=lambda d: d.name)
    return ops.status(devices) if devices else []


def probe(name: str, *, report=ignore, cancel=None) -> dict:
    from studio.core.deploy import inventory, ops

    return ops.probe(inventory.get(name))


def fingerprint(name: str, *, report=ignore, cancel=None) -> tuple:
    """(device, presented fingerprint, key, fingerprint trusted before or None)."""
    from studio.core.deploy import inventory, known_hosts, ops

    device = inventory.get(name)
    fp, key = ops.fetch_fingerprint(device)
    return device, fp, key, known_hosts.trusted_fingerprint(device.host, device.port)


def rollback(name: str, *, report=ignore, cancel=None) -> dict:
    from studio.core.deploy import inventory, ops

    return ops.rollback(inventory.get(name))


def demo_setup(*, report=ignore, cancel=None) -> dict:
    """Samples (trained once, locally, on real MNIST) and the local demo device."""
    from studio.core.app.samples import ensure_samples
    from studio.core.deploy import inventory

    info = ensure_samples(report=report, cancel=cancel)
    if "demo" not in inventory.load():
        inventory.add(inventory.demo_device())
    return info


def check(names: list[str] | None = None, *, report=ignore, cancel=None, on_event=None) -> list[CheckResult]:
    """As `studio check`: the named devices (all when none are named) checked and recorded in the history; each
    device's CheckResult arrives as an event as soon as it is known."""
    from studio.core.deploy import inventory
    from studio.core.monitor.check import check_devices

    devices = inventory.select(names=names) if names else sorted(inventory.load().values(), key=lambda d: d.name)
    done: list[CheckResult] = []

    def finished(result: CheckResult) -> None:
        done.append(result)
        report(len(done) / len(devices), f"{result.device}: {result.verdict.value}")
        if on_event:
            on_event(result)

    if not devices:
        return []
    report(0.0, f"Checking {len(devices)} device(s)")
    results = check_devices(devices, on_result=finished, cancel=lambda: cancel is not None and cancel.cancelled)
    if cancel is not None:
        cancel.raise_if_cancelled()
    return results
