"""The history of on-device checks: one SQLite row per check (WAL, so several Studio processes can write at once
and a crash mid-write loses no committed row), with a schema_version table and migrations."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from studio.core.base import paths
from studio.core.base.errors import StudioError, short
from studio.core.monitor.records import CheckResult

SCHEMA_VERSION = 2

# Each step takes the database from version i to i + 1. Version 1 kept the whole check as JSON next to the keys
# it was searched by; version 2 adds the bundle id as a column and an index for "the first check of a release".
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    ("CREATE TABLE checks (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, release TEXT,"
     " verdict TEXT NOT NULL, checked_at TEXT NOT NULL, doc TEXT NOT NULL)",
     "CREATE INDEX checks_device ON checks (device, checked_at)"),
    ("ALTER TABLE checks ADD COLUMN bundle_id TEXT",
     "UPDATE checks SET bundle_id = json_extract(doc, '$.bundle_id')",
     "CREATE INDEX checks_release ON checks (device, release, checked_at)"),
)
_ORDER = "ORDER BY checked_at, id"


def db_path() -> Path:
    return paths.data_dir() / "monitor.db"


class History:
    """The check history in one SQLite file; safe to share between threads of one process and between processes."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else db_path()
        paths.ensure(self.path.parent)
        self._lock = threading.Lock()
        try:
            self._db = _open(self.path)
        except (sqlite3.DatabaseError, StudioError) as exc:
            raise StudioError(f"cannot open the monitor history: {short(exc)}", self.path) from None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def record(self, result: CheckResult) -> None:
        """Adds one check as one committed row."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO checks (device, release, bundle_id, verdict, checked_at, doc) VALUES (?,?,?,?,?,?)",
                    (result.device, result.release, result.bundle_id, result.verdict.value, result.checked_at,
                     json.dumps(result.to_json())))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, device: str | None = None) -> list[CheckResult]:
        """Every check, oldest first; only one device's when `device` is given."""
        if device is None:
            return self._select(f"SELECT doc FROM checks {_ORDER}")
        return self._select(f"SELECT doc FROM checks WHERE device = ? {_ORDER}", device)

    def latest(self) -> dict[str, CheckResult]:
        """The newest check of each device."""
        found = self._select("SELECT doc FROM checks c WHERE id = (SELECT id FROM checks d WHERE d.device = c.device"
                             " ORDER BY checked_at DESC, id DESC LIMIT 1) ORDER BY device")
        return {r.device: r for r in found}

    def previous(self, device: str) -> CheckResult | None:
        """The check before the device's newest one (the trend of `studio monitor` compares with it)."""
        found = self._select("SELECT doc FROM checks WHERE device = ?"
                             " ORDER BY checked_at DESC, id DESC LIMIT 1 OFFSET 1", device)
        return found[0] if found else None

    def first(self, device: str, release: str) -> CheckResult | None:
        """The device's first check of that release: the baseline later checks are compared with."""
        found = self._select(f"SELECT doc FROM checks WHERE device = ? AND release = ? {_ORDER} LIMIT 1",
                             device, release)
        return found[0] if found else None

    def devices(self) -> list[str]:
        with self._lock:
            return [d for (d,) in self._db.execute("SELECT DISTINCT device FROM checks ORDER BY device")]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, sql: str, *args) -> list[CheckResult]:
        with self._lock:
            docs = [doc for (doc,) in self._db.execute(sql, args)]
        return [CheckResult.from_json(json.loads(doc)) for doc in docs]


def schema_version(db: sqlite3.Connection) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def _open(path: Path, wait_s: float = 30.0) -> sqlite3.Connection:
    """Connects, switches to WAL and migrates. Switching the journal mode of a file another process is creating
    at the same moment can fail with "database is locked" without SQLite's busy handler being asked, so the
    whole sequence is tried again, with a growing pause, until `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        db = sqlite3.connect(path, timeout=wait_s, check_same_thread=False, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db)
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        except BaseException:
            db.close()
            raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def migrate(db: sqlite3.Connection, to: int = SCHEMA_VERSION) -> int:
    """Brings the database up to version `to` in one transaction; returns the version it is at afterwards."""
    db.execute("BEGIN IMMEDIATE")  # one process migrates, the others wait and then find nothing to do
    try:
        version = schema_version(db)
        if version > SCHEMA_VERSION:
            raise StudioError(f"the monitor history has schema_version {version}, newer than this studio understands")
        for step in _MIGRATIONS[version:to]:
            for sql in step:
                db.execute(sql)
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (max(version, to),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return max(version, to)
