"""The monitor's check: run the installed release's check set on each device (through the agent, with the device's
runtime), judge it against the bundle's promise and the device's first check of that release, and record it."""
from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from studio.core.base.errors import StudioError
from studio.core.deploy import ops
from studio.core.deploy.inventory import Device, DeviceError
from studio.core.measure.fidelity import Floors, OutputFidelity
from studio.core.monitor.history import History
from studio.core.monitor.records import CheckResult, DeviceFacts, OutputCheck, Verdict

# The worst problem names the verdict; the reason lists them all.
_SEVERITY = (Verdict.DRIFT, Verdict.SLOWER, Verdict.BEHIND)


@dataclass(frozen=True)
class CheckOptions:
    latency_margin: float = 0.25  # --latency-margin: slower = median more than this fraction over the baseline
    # ... and more than this many ms over it: a tiny model's 0.02 ms median jitters by more than 25% between checks
    latency_floor_ms: float = 0.05
    runs: int = 30  # timed runs per check
    concurrency: int = 4
    threads: int = 1
    floors: Floors = Floors()  # the quality gate of the sweep
    fidelity_tolerance: float = 1e-3  # a cosine this much below the first check's is a change (agreement: 1 point)
    timeout_s: float = 300.0

    def __post_init__(self):
        if self.latency_margin < 0 or self.runs < 1 or self.concurrency < 1 or self.threads < 1:
            raise StudioError("check options: the latency margin must be >= 0, runs, concurrency and threads >= 1")


@dataclass(frozen=True)
class Release:
    """What a device runs, as its agent describes it."""
    id: str
    name: str | None
    version: str | None


def check_devices(devices: list[Device], options: CheckOptions = CheckOptions(), *,
                  history: History | None = None,
                  on_result: Callable[[CheckResult], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> list[CheckResult]:
    """Checks every device (at most options.concurrency at once), records each result in `history` (default: the
    user's), calls `on_result` as each device finishes; an unreachable device is Verdict.UNREACHABLE, never raised.
    Devices not started when `cancel()` turns true are left out."""
    own = history is None
    store = History() if history is None else history
    try:
        newest = fleet_newest(devices)

        def one(device: Device) -> CheckResult | None:
            if cancel is not None and cancel():
                return None
            result = check_one(device, options, store, newest)
            store.record(result)
            if on_result is not None:
                on_result(result)
            return result

        with ThreadPoolExecutor(max_workers=min(options.concurrency, max(1, len(devices)))) as pool:
            found = list(pool.map(one, devices))
        return [r for r in found if r is not None]
    finally:
        if own:
            store.close()


def fleet_newest(devices: list[Device]) -> dict[str, Release]:
    """{bundle name: the newest release any of these devices runs} (status is one quick round trip each)."""
    newest: dict[str, Release] = {}
    for doc in ops.status(devices):
        current = doc.get("current") if doc.get("reachable") else None
        if not current or not current.get("name"):
            continue
        release = Release(current["id"], current["name"], current.get("version"))
        best = newest.get(current["name"])
        if best is None or version_key(release.version) > version_key(best.version):
            newest[current["name"]] = release
    return newest


def version_key(version: str | None) -> tuple:
    """'1.10.0' after '1.9.2': numbers compare as numbers, words as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", version or "") if p)


def check_one(device: Device, options: CheckOptions, history: History, newest: dict[str, Release]) -> CheckResult:
    try:
        answer = ops.check(device, options.runs, options.threads, options.timeout_s)
    except StudioError as exc:
        if isinstance(exc, DeviceError) and "no release is installed" in exc.message:
            return _plain(device, Verdict.BEHIND, "no release is installed on the device")
        return _plain(device, Verdict.UNREACHABLE, exc.message)
    release = Release(answer["release"]["id"], answer["release"].get("name"), answer["release"].get("version"))
    first = history.first(device.name, release.id)
    return judge(device.name, answer, first, newest, options)


def _plain(device: Device, verdict: Verdict, reason: str) -> CheckResult:
    return CheckResult(device.name, None, None, verdict, reason, None, None, None, None, (), None, now())


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(device: str, answer: dict[str, Any], first: CheckResult | None, newest: dict[str, Release],
          options: CheckOptions) -> CheckResult:
    """The verdict on one agent answer: drift, slower and behind, each with its reason in words, else ok."""
    release = answer["release"]
    result = answer.get("result") or {}
    latency = result.get("latency_ms") or {}
    promise = promised_latency(answer)
    fidelity = tuple(OutputCheck.from_json(f) for f in result.get("fidelity") or ())
    problems = [(Verdict.DRIFT, why) for why in drift(answer, fidelity, first, options)]
    median = latency.get("median")
    problems += [(Verdict.SLOWER, why) for why in slower(median, promise, first, options)]
    problems += [(Verdict.BEHIND, why) for why in behind(release, newest)]
    problems.sort(key=lambda p: _SEVERITY.index(p[0]))
    verdict = problems[0][0] if problems else Verdict.OK
    reason = "; ".join(why for _, why in problems) or _fine(median, promise, fidelity)
    facts = dict(answer.get("facts") or {}, runtime=result.get("runtime"),
                 runtime_version=result.get("runtime_version"), python_version=result.get("python_version"))
    return CheckResult(device=device, release=release["id"], bundle_id=result.get("bundle") or release["id"],
                       verdict=verdict, reason=reason, latency_ms_median=median, latency_ms_p90=latency.get("p90"),
                       peak_memory_mb=result.get("peak_memory_mb"), promise_latency_ms=promise, fidelity=fidelity,
                       facts=DeviceFacts.from_json(facts), checked_at=now(), promise_cosine=promised_cosine(answer))


def promised_latency(answer: dict[str, Any]) -> float | None:
    """The bundle's promise: the device latency its sweep measured, else the host latency measured at export (an
    older bundle: what its metrics recorded)."""
    for doc in (answer.get("promise") or {}, answer.get("metrics") or {}):
        for key in ("device_latency_ms_median", "latency_ms_median"):
            if isinstance(doc.get(key), int | float):
                return float(doc[key])
    return None


def promised_cosine(answer: dict[str, Any]) -> float | None:
    """The lowest output cosine the bundle promised at export (None for bundles older than the check set)."""
    found = [f.get("cosine") for f in (answer.get("promise") or {}).get("fidelity") or ()]
    scored = [float(c) for c in found if isinstance(c, int | float)]
    return min(scored) if scored else None


def drift(answer: dict[str, Any], fidelity: tuple[OutputCheck, ...], first: CheckResult | None,
          options: CheckOptions) -> list[str]:
    result = answer.get("result") or {}
    if not result.get("ok"):
        return [f"the model no longer runs: {result.get('error') or 'the runner gave no reason'}"]
    out = [f"the installed release is not what was shipped: {answer['damaged']}"] if answer.get("damaged") else []
    promised = {f.get("name"): f for f in (answer.get("promise") or {}).get("fidelity") or ()}
    for f in fidelity:
        miss = options.floors.reason(_as_fidelity(f))
        at_export = promised.get(f.name)
        if miss and (at_export is None or not options.floors.reason(_as_fidelity(OutputCheck.from_json(at_export)))):
            out.append(f"below the quality gate: {miss}")
    before = {f.name: f for f in first.fidelity} if first is not None else {}
    for f in fidelity:
        change = _changed(before.get(f.name), f, options.fidelity_tolerance)
        if change:
            out.append(f"output '{f.name}' changed since the first check ({first.checked_at}): {change}")  # type: ignore[union-attr]
    return out


def _as_fidelity(f: OutputCheck) -> OutputFidelity:
    return OutputFidelity(f.name, f.cosine if f.cosine is not None else 1.0, f.sqnr_db, f.max_abs or 0.0,
                          f.agreement is not None, f.agreement)


def _changed(was: OutputCheck | None, now_: OutputCheck, tolerance: float) -> str:
    if was is None:
        return ""
    if was.agreement is not None and now_.agreement is not None and now_.agreement < was.agreement - 1.0:
        return f"top-1 agreement {now_.agreement:.1f}% (was {was.agreement:.1f}%)"
    if was.cosine is not None and now_.cosine is not None and now_.cosine < was.cosine - tolerance:
        return f"cosine {now_.cosine:.4f} (was {was.cosine:.4f})"
    return ""


def slower(median: float | None, promise: float | None, first: CheckResult | None,
           options: CheckOptions) -> list[str]:
    if median is None:
        return []
    out = []

    def over(base: float) -> bool:
        return median > base + max(base * options.latency_margin, options.latency_floor_ms)
    if promise and over(promise):
        out.append(f"median {median:.3g} ms is {(median / promise - 1) * 100:.0f}% over the promised {promise:.3g} ms")
    base = first.latency_ms_median if first is not None else None
    if base and over(base):
        out.append(f"median {median:.3g} ms is {(median / base - 1) * 100:.0f}% over this device's first check of"
                   f" the release ({base:.3g} ms on {first.checked_at})")  # type: ignore[union-attr]
    return out


def behind(release: dict[str, Any], newest: dict[str, Release]) -> list[str]:
    best = newest.get(release.get("name") or "")
    if best is None or best.id == release["id"] or version_key(best.version) <= version_key(release.get("version")):
        return []
    return [f"runs {release.get('version')}, the fleet's newest release is {best.version} ({best.id})"]


def _fine(median: float | None, promise: float | None, fidelity: tuple[OutputCheck, ...]) -> str:
    parts = []
    if median is not None:
        parts.append(f"median {median:.3g} ms" + (f" (promised {promise:.3g} ms)" if promise else ""))
    if fidelity:
        worst = min(fidelity, key=lambda f: f.cosine if f.cosine is not None else 1.0)
        parts.append(f"lowest cosine {worst.cosine:.4f} on '{worst.name}'" if worst.cosine is not None else "")
    return ", ".join(p for p in parts if p) or "the check passed"
