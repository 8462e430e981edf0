"""What one on-device check found, as typed records: fidelity per output, the device's facts and the verdict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    OK = "ok"
    SLOWER = "slower"  # median latency over the promise, or over the device's first check of this release
    DRIFT = "drift"  # fidelity below the quality gate, or changed since the first check
    BEHIND = "behind"  # not running the fleet's newest release
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class OutputCheck:
    """The fidelity of one output against the bundle's expected outputs (the sweep's metrics)."""
    name: str
    cosine: float | None
    sqnr_db: float | None
    max_abs: float | None
    agreement: float | None  # top-1 agreement in percent, class-score outputs only

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OutputCheck:
        return cls(name=str(doc["name"]), cosine=_num(doc.get("cosine")), sqnr_db=_num(doc.get("sqnr_db")),
                   max_abs=_num(doc.get("max_abs")), agreement=_num(doc.get("agreement")))


_TEXT_FACTS = ("runtime", "runtime_version", "python_version")


@dataclass(frozen=True)
class DeviceFacts:
    """What the device said about itself while it was checked; None where it could not tell."""
    uptime_s: float | None = None
    load_1m: float | None = None
    mem_total_mb: float | None = None
    mem_available_mb: float | None = None
    disk_free_mb: float | None = None
    temperature_c: float | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    python_version: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DeviceFacts:
        values: dict[str, Any] = {f.name: (_text if f.name in _TEXT_FACTS else _num)(doc.get(f.name))
                                  for f in fields(cls)}
        return cls(**values)


@dataclass(frozen=True)
class CheckResult:
    """One check of one device: a row of the monitor history and an object of `studio check --json`."""
    device: str
    release: str | None  # release id running on the device (None when unreachable or unknown)
    bundle_id: str | None
    verdict: Verdict
    reason: str  # in words, e.g. "median 3.1 ms is 41% over the promised 2.2 ms"
    latency_ms_median: float | None
    latency_ms_p90: float | None
    peak_memory_mb: float | None
    promise_latency_ms: float | None  # the bundle's promise (device latency measured at export, else host)
    fidelity: tuple[OutputCheck, ...]
    facts: DeviceFacts | None
    checked_at: str  # ISO 8601 UTC, e.g. "2026-12-02T08:00:00Z"
    promise_cosine: float | None = None  # the lowest output cosine the bundle promised (measured at export)

    def __post_init__(self):
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    @property
    def ok(self) -> bool:
        return self.verdict == Verdict.OK

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "release": self.release, "bundle_id": self.bundle_id,
                "verdict": self.verdict.value, "reason": self.reason,
                "latency_ms_median": self.latency_ms_median, "latency_ms_p90": self.latency_ms_p90,
                "peak_memory_mb": self.peak_memory_mb, "promise_latency_ms": self.promise_latency_ms,
                "fidelity": [asdict(f) for f in self.fidelity],
                "facts": asdict(self.facts) if self.facts is not None else None,
                "checked_at": self.checked_at, "promise_cosine": self.promise_cosine}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CheckResult:
        facts = doc.get("facts")
        return cls(device=str(doc["device"]), release=_text(doc.get("release")), bundle_id=_text(doc.get("bundle_id")),
                   verdict=Verdict(doc["verdict"]), reason=str(doc.get("reason", "")),
                   latency_ms_median=_num(doc.get("latency_ms_median")),
                   latency_ms_p90=_num(doc.get("latency_ms_p90")),
                   peak_memory_mb=_num(doc.get("peak_memory_mb")),
                   promise_latency_ms=_num(doc.get("promise_latency_ms")),
                   fidelity=tuple(OutputCheck.from_json(f) for f in doc.get("fidelity") or ()),
                   facts=DeviceFacts.from_json(facts) if isinstance(facts, dict) else None,
                   checked_at=str(doc["checked_at"]), promise_cosine=_num(doc.get("promise_cosine")))


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
