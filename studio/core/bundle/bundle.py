"""Bundles: one reproducible, checksummed (optionally signed) zip with a model, its manifest and a device runner.

    NAME.bundle.zip
      manifest.json    what it is and the sha256 of every other file (schemas/manifest.schema.json)
      manifest.sig     Ed25519 signature of manifest.json (when signed)
      model.onnx | model.tflite
      runner.py        device-side check: load with the device runtime, run once, print JSON
      sample.npz       one input sample and the model's outputs on it, which the runner checks after a push
      checks.npz       the check set of the monitor: N inputs and the source model's outputs on them
"""
from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from studio.core.base import atomic
from studio.core.base.errors import StudioError, short
from studio.core.base.hashing import sha256_bytes
from studio.core.bundle import bundle_rules as rules
from studio.core.bundle import signing
from studio.core.bundle.bundle_rules import MANIFEST, RUNNER, SIGNATURE
from studio.core.bundle.check_set import CHECKS, DEFAULT_COUNT, CheckSet
from studio.core.bundle.sample import SAMPLE, BundleSample, check_sample
from studio.core.bundle.trust import TrustedKey
from studio.core.sweep.run_folder import CANDIDATE_META, RunFolder
from studio.core.tensors.shapes import ShapeRequest

if TYPE_CHECKING:  # inspect_model itself is imported when a bundle is built: it pulls in the runtimes
    from studio.core.inspect.modelinfo import ModelInfo

# 2: every bundle carries a sample (inputs and expected outputs) that its runner checks
# 3: and a check set with the source model's outputs and the promise measured at export (`studio check`)
MANIFEST_VERSION = 3
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ORT_FOR_OPSET = {7: "1.0", 8: "1.0", 9: "1.0", 10: "1.0", 11: "1.0", 12: "1.3", 13: "1.6", 14: "1.8", 15: "1.10",
                 16: "1.11", 17: "1.13", 18: "1.14", 19: "1.16", 20: "1.17", 21: "1.18", 22: "1.20", 23: "1.22"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class BundleError(StudioError):
    """A bundle is malformed, unsafe, tampered with, or its signature does not match."""



@dataclass
class ExportSource:
    """What goes into a bundle: the model file plus whatever is known about how it was made and measured."""
    model: Path
    recipe: dict | None = None
    metrics: dict | None = None
    source_name: str | None = None
    source_sha256: str | None = None
    source_format: str | None = None
    labels: list[str] | None = None
    extra_files: list[Path] = field(default_factory=list)
    shapes: ShapeRequest = ShapeRequest()  # the input shapes the model was made and measured at
    degraded: str | None = None  # why the sweep found it below the quality gate
    source_path: Path | None = None  # the model it was made from, when that file is still here


def _created(created: str | None) -> tuple[str | None, tuple]:
    """The manifest's `created` and the zip timestamps: the user's time, SOURCE_DATE_EPOCH, or none at all."""
    if created:
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise BundleError(f"--created '{created}' is not an ISO 8601 time") from None
    elif os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        try:
            when = datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), UTC)
        except ValueError:
            raise BundleError("SOURCE_DATE_EPOCH must be a number of seconds") from None
    else:
        return None, FIXED_TIME
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    stamp = max(when, datetime(1980, 1, 1, tzinfo=UTC))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ"), stamp.timetuple()[:6]


def _runtime(info) -> dict:
    if info.format == "onnx":
        opset = info.details.get("opset") or 0
        return {"name": "onnxruntime", "min_version": ORT_FOR_OPSET.get(opset), "opset": opset}
    return {"name": "tflite", "min_version": info.details.get("min_runtime_version"),
            "ops": info.details.get("builtin_ops", []), "custom_ops": info.details.get("custom_ops", [])}


def _tensor(t) -> dict:
    q = t.quantization
    return {"name": t.name, "shape": t.shape, "dtype": t.dtype,
            "quantization": {"scale": q.scale, "zero_point": q.zero_point, "axis": q.axis} if q else None}


def build_bundle(src: ExportSource, out: str | os.PathLike, *, name: str, version: str,
                 labels: list[str] | None = None, sign_key: str | None = None, created: str | None = None,
                 sample: BundleSample | None = None, preprocessing: dict | None = None,
                 allow_degraded: bool = False, checks: CheckSet | None = None) -> dict:
    """Write the bundle zip (temporary name, then rename) and return its manifest."""
    if src.degraded and not allow_degraded:
        raise BundleError(f"is degraded ({src.degraded}): export it anyway with --allow-degraded", src.model.parent)
    for what, value in (("name", name), ("version", version)):
        if not TOKEN.match(value or ""):
            raise BundleError(f"bundle {what} '{value}' must be 1-64 letters, digits, '.', '_', '+' or '-'")
    info = _bundleable(src.model)
    model_name = f"model.{info.format}"
    payload: dict[str, bytes] = {model_name: src.model.read_bytes(),
                                 RUNNER: (Path(__file__).parent / "runner.py").read_bytes()}
    import numpy as np

    sample = sample or bundle_sample(src)
    buf = io.BytesIO()
    np.savez(buf, **sample.arrays())  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
    payload[SAMPLE] = _deterministic_npz(buf.getvalue())
    checks = checks or bundle_check_set(src, shapes=_shapes_of(sample, info) or None)
    buf = io.BytesIO()
    np.savez(buf, **checks.arrays())  # type: ignore[arg-type]
    payload[CHECKS] = _deterministic_npz(buf.getvalue())
    files = {k: {"sha256": sha256_bytes(v), "size": len(v)} for k, v in sorted(payload.items())}
    digest = sha256_bytes("".join(f"{k}:{v['sha256']}\n" for k, v in files.items()).encode())
    created_text, zip_time = _created(created)
    private = signing.load_private(sign_key) if sign_key else None
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "id": f"{name}-{version}-{digest[:12]}",
        "name": name, "version": version, "format": info.format, "model": model_name,
        "runtime": _runtime(info),
        "inputs": [_tensor(t) for t in info.inputs], "outputs": [_tensor(t) for t in info.outputs],
        "preprocessing": preprocessing or (src.recipe or {}).get("preprocess") or {},
        "labels": labels if labels is not None else src.labels,
        "recipe": src.recipe, "metrics": src.metrics,
        "source": {"name": src.source_name or src.model.name,
                   "sha256": src.source_sha256 or sha256_bytes(payload[model_name]),
                   "format": src.source_format or info.format},
        "files": files, "runner": RUNNER, "created": created_text,
        "sample": sample.manifest_entry([t.name for t in info.inputs]),
        "check_set": checks.manifest_entry(), "promise": checks.promise,
        "signing": {"algorithm": "ed25519", "key_fingerprint": signing.fingerprint(private.public_key())}
        if private else None,
    }
    manifest = atomic.json_safe(manifest)
    _validate(manifest, Path(out))
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    members = [(MANIFEST, manifest_bytes)]
    if private:
        members.append((SIGNATURE, signing.sign(private, manifest_bytes)))
    members += sorted(payload.items())
    _write_zip(out, members, zip_time)
    return manifest


def _shapes_of(sample: BundleSample, info: ModelInfo) -> ShapeRequest:
    """The shapes the bundle's sample runs at, for the inputs with dims the model leaves open: its check set is made
    at the same ones (a sample that does not fit is left to verify, which names the misfit)."""
    from studio.core.tensors.shapes import fits

    return ShapeRequest(tuple((t.name, tuple(a.shape)) for t, a in zip(info.inputs, sample.inputs, strict=False)
                              if t.dynamic_dims and not fits(t, tuple(a.shape))))


def _bundleable(model: Path) -> ModelInfo:
    """The model's ModelInfo, or the reason it cannot go in a bundle."""
    from studio.core.inspect.inspector import inspect_model

    info = inspect_model(model)
    if info.format not in ("onnx", "tflite"):
        raise BundleError("a bundle carries an ONNX or TFLite model: optimize the model first"
                          " (`studio optimize MODEL --target onnx|tflite -o OUT`)", model)
    info.require_runnable(BundleError, "the model does not run, so it cannot be bundled", model)
    if info.details.get("external_data"):
        raise BundleError("models with external weight files are not bundled yet; re-export with weights inside",
                          model)
    return info


def _write_zip(out: str | os.PathLike, members: list[tuple[str, bytes]], zip_time: tuple) -> None:
    """The zip, reproducibly: fixed times and modes, deflate level 9; written under a temporary name, then renamed."""
    with atomic.atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for member, data in members:
            zi = zipfile.ZipInfo(member, date_time=zip_time)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 3
            zi.external_attr = ((0o755 if member == RUNNER else 0o644) | stat.S_IFREG) << 16
            zf.writestr(zi, data, compresslevel=9)


def _deterministic_npz(data: bytes) -> bytes:
    """np.savez stamps the current time into its zip entries: rewrite them with a fixed time."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in sorted(src.namelist()):
            zi = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, src.read(name))
    return out.getvalue()


def _validate(manifest: dict, where: Path) -> None:
    import jsonschema

    from studio.core.schemas import load_schema

    try:
        jsonschema.validate(manifest, load_schema("manifest"))
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise BundleError(f"{MANIFEST} does not follow the manifest schema at {at}: {exc.message}", where) from None


# --- reading and verifying --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verified:
    manifest: dict
    signed: bool
    signature_checked: bool
    key_fingerprint: str | None  # the key that checked the signature; unchecked: the key the manifest names


ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, NotImplementedError)


def verify_bundle(path: str | os.PathLike, pubkey: str | None = None, *, trusted: Sequence[TrustedKey] = (),
                  _extract_to: Path | None = None) -> Verified:
    """Check structure, schema, every hash and the signature: against `pubkey`, else against any of the `trusted`
    keys; BundleError says what is wrong. The zip, member and manifest rules are the device's (bundle_rules)."""
    p = Path(path)
    if not p.is_file():
        raise BundleError("bundle not found" if not p.exists() else "is not a file", p)
    key = signing.load_public(pubkey) if pubkey else None
    try:
        zf = zipfile.ZipFile(p)
    except ZIP_ERRORS as exc:
        raise BundleError(f"not a bundle: not a readable zip archive ({short(exc)})", p) from None
    try:
        with zf:
            members, manifest_bytes, manifest = rules.open_bundle(zf)
            _validate(manifest, p)
            contents = dict(rules.listed_contents(zf, members, manifest))
            signature = rules.read_member(zf, members[SIGNATURE]) if SIGNATURE in members else None
    except rules.RuleError as exc:
        raise BundleError(str(exc), p) from None
    if SAMPLE in contents:
        check_sample(contents[SAMPLE], manifest, str(p), BundleError)
    checked, fingerprint = _signature(manifest, manifest_bytes, signature, key, trusted, p)
    if _extract_to is not None:
        for name, data in contents.items():
            target = _extract_to / name
            with open(target, "xb") as fh:
                fh.write(data)
            os.chmod(target, 0o755 if name == RUNNER else 0o644)
        (_extract_to / MANIFEST).write_bytes(manifest_bytes)
    return Verified(manifest, signature is not None, checked, fingerprint)


def _signature(manifest: dict, manifest_bytes: bytes, signature: bytes | None, key, trusted: Sequence[TrustedKey],
               p: Path) -> tuple[bool, str | None]:
    """(checked, fingerprint): against the given key, which must match; else against the user's trusted keys,
    where a trusted key that the manifest names must match too."""
    named = (manifest.get("signing") or {}).get("key_fingerprint")
    if key is not None:
        fingerprint = signing.fingerprint(key)
        if signature is None:
            raise BundleError(f"is not signed (no {SIGNATURE}) but a public key was given to check it", p)
        if not signing.verify(key, manifest_bytes, signature):
            raise BundleError(f"{SIGNATURE}: signature does not match {MANIFEST} for public key {fingerprint}"
                              " (the manifest was changed, or it was signed with another key)", p)
        return True, fingerprint
    if signature is None:
        return False, None
    if not manifest.get("signing"):
        raise BundleError(f"has {SIGNATURE} but {MANIFEST} names no signing key", p)
    for t in trusted:
        if signing.verify(t.key, manifest_bytes, signature):
            return True, t.fingerprint
    for t in trusted:
        if t.fingerprint == named:
            raise BundleError(f"{SIGNATURE}: signature does not match {MANIFEST} for trusted key {named}"
                              " (the manifest was changed, or it was signed with another key)", p)
    return False, named


def safe_extract(path: str | os.PathLike, dest: str | os.PathLike, pubkey: str | None = None) -> Verified:
    """Verify, then write the bundle's files into the empty folder `dest` (plain files only, no links)."""
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    if any(d.iterdir()):
        raise BundleError(f"cannot extract into '{d}': the folder is not empty", path)
    return verify_bundle(path, pubkey, _extract_to=d)


def read_labels(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    try:
        lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read labels ({exc})", p) from None
    labels = [line for line in lines if line]
    if not labels:
        raise BundleError("labels file is empty", p)
    return labels


def resolve_source(path: str | os.PathLike) -> ExportSource:
    """An ONNX/TFLite file, an `optimize` output folder, or a sweep candidate (RUN/ID or RUN/candidates/ID)."""
    p = Path(path)
    if p.is_file():
        return ExportSource(p)
    candidate = RunFolder.of_candidate(p)  # RUN/ID (or RUN/candidates/ID) means candidate ID of sweep run RUN
    if candidate is not None:
        p = candidate[0].candidate(candidate[1])
    if p.is_dir():
        models = sorted(p.glob("model.onnx")) + sorted(p.glob("model.tflite"))
        if not models:
            raise BundleError("holds no model.onnx or model.tflite (expected a `studio optimize` output folder or"
                              " a sweep candidate)", p)
        meta_file = p / "report.json" if (p / "report.json").is_file() else p / CANDIDATE_META
        meta = {}
        if meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise BundleError(f"cannot read ({exc})", meta_file) from None
        source = meta.get("source") or {}
        metrics = meta.get("metrics")
        if metrics is None and meta_file.name == "report.json" and meta:
            check = (meta.get("conversion") or {}).get("check")
            metrics = {"measured_by": "studio optimize", "conversion_check": check,
                       "quantization_effect": meta.get("quantization_effect"),
                       "pruning_effect": meta.get("pruning_effect"), "host": meta.get("host")}
        return ExportSource(models[0], recipe=meta.get("recipe"), metrics=metrics,
                            source_name=Path(source["path"]).name if source.get("path") else None,
                            source_sha256=source.get("sha256"), source_format=source.get("format"),
                            labels=meta.get("labels"), shapes=_recorded_shapes(p, meta),
                            source_path=Path(source["path"]) if source.get("path") else None,
                            degraded=meta.get("degraded") or (meta.get("fidelity") or {}).get("degraded"))
    raise BundleError("not found (expected a model file, an optimize output folder or RUN/CANDIDATE_ID)", p)


def bundle_sample(src: ExportSource, dataset: str | os.PathLike | None = None,
                  shapes: ShapeRequest | None = None) -> BundleSample:
    """The bundle's sample: the first of `dataset` prepared as the source's recipe says, else synthetic inputs at
    the shapes the model was made for (`shapes`, else those its run recorded)."""
    from studio.core.bundle.sample import make_sample
    from studio.core.recipe.recipe import Preprocess, Recipe

    pre = Recipe.from_dict(src.recipe).preprocess if src.recipe else Preprocess()
    return make_sample(str(src.model), dataset, shapes or src.shapes, pre)


def bundle_check_set(src: ExportSource, dataset: str | os.PathLike | None = None,
                     shapes: ShapeRequest | None = None, count: int = DEFAULT_COUNT) -> CheckSet:
    """The bundle's check set: `count` samples of `dataset` (else synthetic) with the source model's outputs, and the
    promise measured now (with the device latency the sweep measured, when it did)."""
    from studio.core.bundle.check_set import make_check_set
    from studio.core.recipe.recipe import Preprocess, Recipe

    pre = Recipe.from_dict(src.recipe).preprocess if src.recipe else Preprocess()
    device = (src.metrics or {}).get("device_latency_ms_median")
    return make_check_set(src.model, dataset, shapes or src.shapes, pre, count=count, source_model=src.source_path,
                          device_latency_ms=float(device) if isinstance(device, int | float) else None)


def _recorded_shapes(folder: Path, meta: dict) -> ShapeRequest:
    """The input shapes a model's run resolved: optimize's report.json, or the sweep's RUN/work/reference.json."""
    rows = meta.get("input_shapes")
    candidate = RunFolder.of_candidate(folder)
    if rows is None and candidate is not None:
        ref = candidate[0].work / "reference.json"
        try:
            rows = json.loads(ref.read_text(encoding="utf-8")).get("inputs") if ref.is_file() else None
        except ValueError:
            rows = None
    if not isinstance(rows, list):
        return ShapeRequest()
    return ShapeRequest(tuple((str(r["name"]), tuple(int(d) for d in r["shape"])) for r in rows))
