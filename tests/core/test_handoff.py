"""Large job arguments reach a worker through a file it maps: the same values, the caller's array untouched by what
the worker does, nothing left behind, and the pipe when no folder has room."""
import os
import subprocess
import sys

import numpy as np

from studio.core.base import handoff
from studio.core.base.handoff import MIN_BYTES, PREFIX, Handoff
from studio.core.base.jobs import run_job
from studio.core.base.pool import WorkerKind

KIND = WorkerKind.ONNXRUNTIME


def _digest_then_scribble(arrays, report):
    """What the worker received (sum, dtype, shape, whether it is a mapped file), after which it writes into it."""
    seen = [(float(a.astype(np.float64).sum()), str(a.dtype), a.shape, _is_mapped(a)) for a in arrays]
    for a in arrays:
        a[...] = 7  # a framework writing into its input in place
    return seen


def _is_mapped(a) -> bool:
    while a is not None and not isinstance(a, np.memmap):
        a = getattr(a, "base", None)
    return a is not None


def _big(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 1 + MIN_BYTES // 12), dtype=np.float32)


def _folders(base: str) -> list[str]:
    return [e for e in os.listdir(base) if e.startswith(f"{PREFIX}{os.getpid()}-")]


def test_large_arrays_arrive_mapped_and_equal_and_the_files_go():
    big, small = _big(0), np.arange(10, dtype=np.int64)
    view = np.concatenate([_big(1), _big(5)], axis=1)[:, ::2]  # not contiguous, and of MIN_BYTES
    kept = [big.copy(), view.copy(), small.copy()]
    seen = run_job(_digest_then_scribble, [big, view, small], kind=KIND)
    assert seen == [(float(a.astype(np.float64).sum()), str(a.dtype), a.shape, mapped) for a, mapped in
                    zip(kept, (True, True, False), strict=True)]
    for a, b in zip((big, view, small), kept, strict=True):  # the worker's writes stayed in the worker
        np.testing.assert_array_equal(a, b)
    assert not _folders(handoff.SHM) and not _folders(handoff.tempfile.gettempdir())


def test_fresh_worker_jobs_hand_off_too():
    big = _big(2)
    seen = run_job(_digest_then_scribble, [big])  # kind None: a process of its own
    assert seen[0][3] and seen[0][0] == float(big.astype(np.float64).sum())


def test_without_room_the_array_goes_through_the_pipe(monkeypatch):
    monkeypatch.setattr(handoff, "_base_for", lambda nbytes: None)
    big = _big(3)
    seen = run_job(_digest_then_scribble, [big], kind=KIND)
    assert seen == [(float(big.astype(np.float64).sum()), "float32", big.shape, False)]


def test_folders_of_a_killed_caller_are_removed(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    orphan = tmp_path / f"{PREFIX}{dead}-abc"
    orphan.mkdir()
    (orphan / "0.npy").write_bytes(b"x" * 10)
    mine = tmp_path / f"{PREFIX}{os.getpid()}-live"  # a caller that still runs keeps its folder
    mine.mkdir()
    monkeypatch.setattr(handoff, "_base_for", lambda nbytes: str(tmp_path))
    with Handoff() as h:
        assert h.file_for(_big(4)) is not None
        assert not orphan.exists() and mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name]
