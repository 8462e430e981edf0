"""A check history to render: three devices, twenty checks each, with a release change, a slow spell, a drift and
an unreachable answer (the verdicts as the core would give them, the numbers made up)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from studio.core.monitor.records import CheckResult, DeviceFacts, OutputCheck, Verdict

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
FACTS = DeviceFacts(uptime_s=86000.0, load_1m=0.42, mem_total_mb=7800.0, mem_available_mb=5100.0,
                    disk_free_mb=12000.0, temperature_c=48.0, runtime="onnxruntime", runtime_version="1.31.1",
                    python_version="3.11.7")


def check(device: str, i: int) -> CheckResult:
    """The i-th check (0..19) of one of the devices cam-1, cam-2, gate-3."""
    release = "mnist-demo-1.0.0" if device != "cam-1" or i < 10 else "mnist-demo-1.1.0"
    promise = 2.0 if release.endswith("1.0.0") else 1.6
    median, cosine, verdict, reason = promise * (1 + 0.01 * (i % 5)), 0.99995 - 1e-6 * (i % 3), Verdict.OK, "ok"
    if device == "cam-2" and i >= 15:
        median, verdict, reason = promise * 1.6, Verdict.SLOWER, f"median {promise * 1.6:.1f} ms is 60% over the" \
                                                                  f" promised {promise:.1f} ms"
    if device == "gate-3" and i >= 17:
        cosine, verdict, reason = 0.62, Verdict.DRIFT, "output 'logits' cosine 0.62, was 0.99995 at the first check"
    unreachable = device == "gate-3" and i == 19
    if unreachable:
        verdict, reason = Verdict.UNREACHABLE, "cannot be reached: connection refused"
    outputs = (OutputCheck("logits", cosine, 60.0 if cosine > 0.9 else 3.0, 0.01, 100.0 if cosine > 0.9 else 41.0),
               OutputCheck("features", 0.99999, 70.0, 0.001, None))
    return CheckResult(device=device, release=None if unreachable else release,
                       bundle_id=None if unreachable else f"id-{release}", verdict=verdict, reason=reason,
                       latency_ms_median=None if unreachable else median,
                       latency_ms_p90=None if unreachable else median * 1.2,
                       peak_memory_mb=None if unreachable else 80.0, promise_latency_ms=promise,
                       fidelity=() if unreachable else outputs, facts=None if unreachable else FACTS,
                       checked_at=(START + timedelta(minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       promise_cosine=0.99996 if release.endswith("1.0.0") else 0.99993)


def fleet_history() -> list[CheckResult]:
    return [check(d, i) for i in range(20) for d in ("cam-1", "cam-2", "gate-3")]
