"""The monitor history: rows round-trip, WAL, a tested migration, two writing processes, a writer killed mid-write."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.base.errors import StudioError
from studio.core.monitor import history as history_mod
from studio.core.monitor.history import History, db_path, migrate
from studio.core.monitor.records import CheckResult, DeviceFacts, OutputCheck, Verdict

ROOT = Path(__file__).resolve().parents[2]


def result(device: str, n: int, release: str | None = "r1", verdict: Verdict = Verdict.OK) -> CheckResult:
    return CheckResult(device=device, release=release, bundle_id="b-" + str(release), verdict=verdict,
                       reason=f"check {n}", latency_ms_median=1.0 + n, latency_ms_p90=2.0 + n, peak_memory_mb=50.0,
                       promise_latency_ms=1.5, fidelity=(OutputCheck("logits", 0.999, 41.0, 0.01, 100.0),
                                                         OutputCheck("emb", 0.98, None, 0.2, None)),
                       facts=DeviceFacts(uptime_s=12.0, load_1m=0.5, runtime="onnxruntime", python_version="3.11"),
                       checked_at=f"2026-12-02T08:{n:02d}:00Z", promise_cosine=0.9995)


def test_result_json_round_trip_keeps_every_field():
    r = result("cam-1", 3)
    doc = json.loads(json.dumps(r.to_json()))
    assert CheckResult.from_json(doc) == r
    assert doc["verdict"] == "ok" and doc["fidelity"][0]["name"] == "logits"
    bare = CheckResult("cam-2", None, None, Verdict.UNREACHABLE, "refused", None, None, None, None, (), None,
                       "2026-12-02T08:00:00Z")
    assert CheckResult.from_json(bare.to_json()) == bare


def test_rows_latest_first_and_devices(tmp_path):
    with History(tmp_path / "m.db") as h:
        h.record(result("b", 1))
        h.record(result("a", 2, release="r1"))
        h.record(result("a", 3, release="r2"))
        h.record(result("a", 4, release="r2", verdict=Verdict.SLOWER))
        assert [r.reason for r in h.rows("a")] == ["check 2", "check 3", "check 4"]
        assert [r.reason for r in h.rows()] == ["check 1", "check 2", "check 3", "check 4"]
        assert {d: r.reason for d, r in h.latest().items()} == {"a": "check 4", "b": "check 1"}
        assert h.first("a", "r2").reason == "check 3"
        assert h.first("a", "r9") is None
        assert h.previous("a").reason == "check 3" and h.previous("b") is None
        assert h.devices() == ["a", "b"]


def test_db_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert db_path() == tmp_path / "studio" / "monitor.db"
    History().close()
    mode = sqlite3.connect(db_path()).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_migration_from_version_1_keeps_rows_and_fills_the_new_column(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, to=1) == 1
    old = result("cam", 5, release="r7")
    db.execute("INSERT INTO checks (device, release, verdict, checked_at, doc) VALUES (?,?,?,?,?)",
               (old.device, old.release, old.verdict.value, old.checked_at, json.dumps(old.to_json())))
    db.close()
    with History(path) as h:
        assert h.rows() == [old]
        assert h.first("cam", "r7") == old
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(history_mod.SCHEMA_VERSION,)]
    assert db.execute("SELECT bundle_id FROM checks").fetchall() == [("b-r7",)]


def test_a_newer_database_is_refused_in_one_line(tmp_path):
    path = tmp_path / "new.db"
    History(path).close()
    sqlite3.connect(path, isolation_level=None).execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StudioError, match="newer than this studio") as err:
        History(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


WRITER = """
import sys
sys.path.insert(0, {root!r})
from tests.core.test_monitor_history import result
from studio.core.monitor.history import History
h = History({path!r})
for n in range({count}):
    h.record(result({device!r}, n % 60))
    print(n, flush=True)
"""


def writer(path: Path, device: str, count: int) -> subprocess.Popen:
    code = WRITER.format(root=str(ROOT), path=str(path), device=device, count=count)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "m.db"
    procs = [writer(path, "left", 150), writer(path, "right", 150)]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    with History(path) as h:
        assert len(h.rows("left")) == 150 and len(h.rows("right")) == 150


def test_a_writer_killed_mid_write_leaves_every_committed_row(tmp_path):
    path = tmp_path / "m.db"
    proc = writer(path, "cam", 100_000)
    committed = -1
    for line in proc.stdout:
        committed = int(line)
        if committed >= 200:
            break
    proc.send_signal(signal.SIGKILL)  # while it is writing its next rows
    proc.wait(timeout=30)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with History(path) as h:
        rows = h.rows("cam")
        h.record(result("cam", 1))  # and the database still takes new rows
    assert len(rows) >= committed + 1  # every row it reported as committed (and maybe the one after)
