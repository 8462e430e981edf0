"""Worker processes: progress comes back, a segfault or a hang becomes a clear error, cancel stops the worker."""
import os
import signal
import threading
import time

import pytest

from studio.core.base.errors import Cancelled, ConversionError, JobCrashed
from studio.core.base.jobs import run_job
from studio.core.base.progress import CancelToken


def _steps(n, report):
    for i in range(n):
        report((i + 1) / n, f"step {i + 1}")
        time.sleep(0.06)
    return {"pid": os.getpid(), "n": n}


def _segfault(report):
    report(0.5, "about to crash")
    os.kill(os.getpid(), signal.SIGSEGV)


def _raise_studio(report):
    raise ConversionError("the converter refused", "model.onnx")


def _raise_other(report):
    raise KeyError("missing_tensor")


def _forever(report):
    while True:
        time.sleep(0.05)


def test_result_and_progress_come_back():
    seen = []
    result = run_job(_steps, 3, report=lambda f, m: seen.append((round(f, 2), m)))
    assert result["n"] == 3 and result["pid"] != os.getpid()
    assert seen[-1] == (1.0, "step 3") and [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_segfault_becomes_a_clear_error():
    with pytest.raises(JobCrashed) as err:
        run_job(_segfault, what="the TFLite converter")
    assert "the TFLite converter crashed (SIGSEGV)" in str(err.value)


def test_errors_keep_their_type_and_message():
    with pytest.raises(ConversionError) as err:
        run_job(_raise_studio)
    assert err.value.one_line() == "model.onnx: the converter refused"
    with pytest.raises(Exception) as other:
        run_job(_raise_other)
    assert "KeyError: no entry named 'missing_tensor'" in str(other.value) and "details in" in str(other.value)


def test_timeout_and_cancel_stop_the_worker():
    with pytest.raises(JobCrashed, match="did not finish within 1 s"):
        run_job(_forever, timeout=1, what="the worker")
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_job(_forever, cancel=token)
    assert time.monotonic() - start < 10
