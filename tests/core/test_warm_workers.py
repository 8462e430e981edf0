"""Warm workers: one process serves a kind's jobs; a crash, a cancel or a changed environment replaces it; it never
outlives its parent."""
import os
import subprocess
import sys
import threading
import time

import pytest

from studio.core.base.errors import Cancelled, ConversionError, JobCrashed
from studio.core.base.jobs import run_job
from studio.core.base.pool import POOL, WorkerKind
from studio.core.base.progress import CancelToken

KIND = WorkerKind.ONNXRUNTIME


def _pid(report):
    return os.getpid()


def _env(name, report):
    return os.environ.get(name)


def _steps(n, report):
    for i in range(n):
        report((i + 1) / n, f"step {i + 1}")
        time.sleep(0.06)
    return os.getpid()


def _abort(report):
    os.abort()


def _segfault(report):
    import ctypes

    ctypes.string_at(0)


def _forever(report):
    report(0.1, "started")
    while True:
        time.sleep(0.05)


def _raise(report):
    raise ConversionError("the converter refused", "model.onnx")


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours still answers kill(0): reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def _fresh_pool(monkeypatch):
    monkeypatch.delenv("STUDIO_WARM_WORKERS", raising=False)
    POOL.close()
    yield
    POOL.close()


def test_jobs_of_one_kind_share_a_worker_and_errors_pass_through():
    first = run_job(_pid, kind=KIND)
    assert first != os.getpid()
    with pytest.raises(ConversionError, match=r"model\.onnx: the converter refused"):
        run_job(_raise, kind=KIND)
    assert run_job(_pid, kind=KIND) == first
    assert run_job(_pid, kind=WorkerKind.TORCH) != first  # another kind, another worker
    assert run_job(_pid) != first  # kind=None: a fresh process, as before


def test_progress_comes_back_from_a_warm_worker():
    seen = []
    pid = run_job(_steps, 3, report=lambda f, m: seen.append((round(f, 2), m)), kind=KIND)
    assert seen[-1] == (1.0, "step 3") and [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert run_job(_steps, 1, kind=KIND) == pid


@pytest.mark.parametrize("crash, signal_name", [(_abort, "SIGABRT"), (_segfault, "SIGSEGV")])
def test_a_crash_is_one_line_and_the_next_job_gets_a_new_worker(crash, signal_name):
    before = run_job(_pid, kind=KIND)
    with pytest.raises(JobCrashed) as err:
        run_job(crash, kind=KIND, what="the converter")
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"the converter crashed ({signal_name}); details in ")
    assert _gone(before, 5)
    after = run_job(_pid, kind=KIND)
    assert after not in (before, os.getpid())


def test_cancel_kills_the_worker_and_the_next_job_works():
    before = run_job(_pid, kind=KIND)
    token = CancelToken()
    started = threading.Event()

    def report(fraction, message):
        started.set()
        threading.Timer(0.2, token.cancel).start()

    with pytest.raises(Cancelled):
        run_job(_forever, report=report, cancel=token, kind=KIND)
    assert started.is_set() and _gone(before, 5)
    assert run_job(_pid, kind=KIND) != before


def test_timeout_stops_the_worker():
    before = run_job(_pid, kind=KIND)
    with pytest.raises(JobCrashed, match="did not finish within 1 s"):
        run_job(_forever, timeout=1, kind=KIND, what="the worker")
    assert _gone(before, 5) and run_job(_pid, kind=KIND) != before


def test_a_changed_environment_restarts_the_worker(monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_VALUE", "one")
    pid = run_job(_pid, kind=KIND)
    assert run_job(_env, "STUDIO_TEST_VALUE", kind=KIND) == "one" and run_job(_pid, kind=KIND) == pid
    monkeypatch.setenv("STUDIO_TEST_VALUE", "two")
    assert run_job(_env, "STUDIO_TEST_VALUE", kind=KIND) == "two"
    assert run_job(_pid, kind=KIND) != pid and _gone(pid, 5)


def test_warm_workers_off_gives_a_process_per_job(monkeypatch):
    monkeypatch.setenv("STUDIO_WARM_WORKERS", "0")
    pids = {run_job(_pid, kind=KIND) for _ in range(3)}
    assert len(pids) == 3 and os.getpid() not in pids


def test_an_idle_worker_exits_by_itself(monkeypatch):
    monkeypatch.setenv("STUDIO_WORKER_IDLE", "0.5")
    pid = run_job(_pid, kind=KIND)
    assert _gone(pid, 10)  # no job came for 0.5 s: it left on its own
    assert run_job(_pid, kind=KIND) != pid  # and the pool starts another


PARENT = """
import sys
from studio.core.base.jobs import run_job
from studio.core.base.pool import WorkerKind
from tests.core.test_warm_workers import _pid
print(run_job(_pid, kind=WorkerKind.ONNXRUNTIME), flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_a_worker_exits_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    try:
        worker = int(parent.stdout.readline())
        assert worker != parent.pid
        os.kill(worker, 0)  # alive while its parent is
    finally:
        parent.kill()
        parent.wait()
    assert _gone(worker, 10)


def test_a_worker_exits_when_its_parent_is_killed_mid_job():
    code = PARENT.replace("print(run_job(_pid, kind=WorkerKind.ONNXRUNTIME), flush=True)\nsys.stdin.read()",
                          "run_job(_forever, report=lambda f, m: print(_pid(None), flush=True),"
                          " kind=WorkerKind.ONNXRUNTIME)")
    code = code.replace("import _pid", "import _forever, _pid")
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    try:
        parent.stdout.readline()  # the job has started (the parent printed its own pid)
        children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1
        worker = int(children[0])
    finally:
        parent.kill()
        parent.wait()
    assert _gone(worker, 10)


def _user_value(folder, report):
    sys.path.insert(0, folder)
    import user_code_for_warm_test as user

    return os.getpid(), user.VALUE


def _path_has(folder, report):
    return folder in sys.path


def test_the_users_code_is_imported_afresh_by_the_next_job(tmp_path):
    # an --arch file, a pickled class or a scoring function edited between two loads must not run as it was
    (tmp_path / "user_code_for_warm_test.py").write_text("VALUE = 1\n")
    pid, first = run_job(_user_value, str(tmp_path), kind=KIND)
    assert not run_job(_path_has, str(tmp_path), kind=KIND)  # the folder it added is gone again
    (tmp_path / "user_code_for_warm_test.py").write_text("VALUE = 2\n")
    assert first == 1 and run_job(_user_value, str(tmp_path), kind=KIND) == (pid, 2)


def test_a_framework_imported_by_one_job_stays_for_the_next():
    pid = run_job(_pid, kind=KIND)
    run_job(_import, "onnx", kind=KIND)
    assert run_job(_imported, "onnx", kind=KIND) == (pid, True)


def _import(name, report):
    __import__(name)


def _imported(name, report):
    return os.getpid(), name in sys.modules


def test_the_workers_an_optimize_uses_follow_its_routes():
    from studio.core.inspect.formats import Framework
    from studio.core.optimize.stage import workers_for
    from studio.core.recipe.recipe import Target

    K = WorkerKind
    assert workers_for(Framework.ONNX, [Target.ONNX]) == (K.ONNXRUNTIME,)
    assert workers_for(Framework.ONNX, [Target.TFLITE]) == (K.ONNXRUNTIME, K.TORCH, K.LITERT)  # onnx2torch route
    assert workers_for(Framework.PYTORCH, [Target.ONNX, Target.TFLITE]) == (K.TORCH, K.ONNXRUNTIME, K.LITERT)
    assert workers_for(Framework.KERAS, [Target.TFLITE]) == (K.TENSORFLOW, K.LITERT)
    assert workers_for(Framework.TFLITE, [Target.ONNX]) == (K.LITERT, K.TENSORFLOW, K.ONNXRUNTIME)  # tf2onnx


def _started_at(report):
    return time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on this machine


def test_a_timing_waits_for_a_warm_up_under_way_and_holds_back_new_ones():
    # a warm-up imports a framework on one of the cores: a latency measured meanwhile would be slower than it is
    thread = POOL.warm_in_background([KIND])
    deadline = time.monotonic() + 30
    while not POOL._warming and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the warm-up has begun
    assert POOL._warming == 1
    timed_at = run_job(_started_at)  # kind=None: a fresh process, as timings use
    worker = POOL._idle[KIND][0]
    assert timed_at > worker.idle_since  # the timing began after the warm-up had finished

    POOL.close()
    with POOL.quiet():
        thread = POOL.warm_in_background([KIND])
        run_job(_started_at)
        assert POOL._warming == 0 and not POOL.pids(KIND)  # held back while timing
    thread.join(60)
    assert POOL.pids(KIND)
