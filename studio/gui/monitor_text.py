"""The words and numbers the Monitor page and Flash mode show for a check (no pyqtgraph, so Flash stays small)."""
from __future__ import annotations

from datetime import UTC, datetime

from studio.core.monitor.records import CheckResult, DeviceFacts, OutputCheck, Verdict

from . import theme

VERDICT_COLORS = {Verdict.OK: theme.OK, Verdict.SLOWER: theme.WARN, Verdict.BEHIND: theme.WARN,
                  Verdict.DRIFT: theme.BAD, Verdict.UNREACHABLE: "#8a8f98"}
VERDICT_ICONS = {Verdict.OK: "ok", Verdict.SLOWER: "warning", Verdict.BEHIND: "warning", Verdict.DRIFT: "error",
                 Verdict.UNREACHABLE: "error"}
VERDICT_WORDS = {Verdict.OK: "last check OK", Verdict.SLOWER: "last check: slower than promised",
                 Verdict.DRIFT: "last check: its answers changed", Verdict.BEHIND: "last check: runs an older release",
                 Verdict.UNREACHABLE: "last check: could not be reached"}


def epoch(iso: str) -> float:
    """Seconds since 1970 of an ISO 8601 time ('Z' or an offset; a naive time is taken as UTC)."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def worst_output(check: CheckResult) -> OutputCheck | None:
    """The output furthest from the bundle's expected outputs (lowest cosine)."""
    scored = [f for f in check.fidelity if f.cosine is not None]
    return min(scored, key=lambda f: f.cosine or 0.0) if scored else None


def ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def cells(last: CheckResult | None, known: str | None) -> list[str]:
    """Release, verdict, latency vs promise, fidelity, last check of a device's newest check."""
    if last is None:
        return ["", "not checked yet", "", "", ""]
    release = last.release or (f"{known} (last known)" if known else "unknown")
    return [release, last.verdict.value, latency(last), fidelity(last), ago(last.checked_at)]


def latency(r: CheckResult) -> str:
    if r.latency_ms_median is None:
        return "—"
    if r.promise_latency_ms is None:
        return f"{ms(r.latency_ms_median)} ms (no promise)"
    over = (r.latency_ms_median / r.promise_latency_ms - 1) * 100 if r.promise_latency_ms else 0.0
    return f"{ms(r.latency_ms_median)} ms vs {ms(r.promise_latency_ms)} ({over:+.0f}%)"


def fidelity(r: CheckResult) -> str:
    w = worst_output(r)
    if w is None:
        return "—"
    text = f"cos {w.cosine:.5f}"
    if w.agreement is not None:
        text += f", {w.agreement:.1f}% agree"
    return text + (f" (worst of {len(r.fidelity)})" if len(r.fidelity) > 1 else "")


def fidelity_tip(r: CheckResult) -> str:
    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    return "\n".join(f"{f.name}: cosine {num(f.cosine, '.6f')}, SQNR {num(f.sqnr_db, '.1f')} dB, max |diff|"
                     f" {num(f.max_abs, '.3g')}" + (f", agreement {f.agreement:.1f}%" if f.agreement is not None
                                                    else "") for f in r.fidelity)


def ago(iso: str) -> str:
    s = max(0.0, datetime.now(UTC).timestamp() - epoch(iso))
    if s < 90:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if s >= size * 1.5 or unit == "min":
            n = round(s / size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return iso


def details(r: CheckResult) -> str:
    head = f"<b>{r.device}</b> · {r.release or 'release unknown'} · <b>{r.verdict.value}</b>: {r.reason}"
    return head + (f"<br>{facts_line(r.facts)}" if r.facts else "")


def facts_line(f: DeviceFacts) -> str:
    parts = []
    if f.uptime_s is not None:
        parts.append(f"up {f.uptime_s / 3600:.1f} h")
    if f.load_1m is not None:
        parts.append(f"load {f.load_1m:.2f}")
    if f.mem_available_mb is not None and f.mem_total_mb:
        parts.append(f"memory {f.mem_available_mb / 1024:.1f} of {f.mem_total_mb / 1024:.1f} GB free")
    if f.disk_free_mb is not None:
        parts.append(f"disk {f.disk_free_mb / 1024:.1f} GB free")
    if f.temperature_c is not None:
        parts.append(f"{f.temperature_c:.0f} °C")
    if f.runtime:
        parts.append(f"{f.runtime} {f.runtime_version or ''}".strip())
    if f.python_version:
        parts.append(f"Python {f.python_version}")
    return "device: " + ", ".join(parts)
