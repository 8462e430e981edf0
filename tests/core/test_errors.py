"""errors.short and crash_log: every framework failure becomes one readable line, and the details are kept."""
from pathlib import Path

import pytest

from studio.core.base import errors
from studio.core.base.errors import crash_log, short


class _BrokenStr(Exception):
    def __str__(self):
        raise RuntimeError("no")


class _BrokenRepr:
    def __repr__(self):
        raise RuntimeError("no")


@pytest.mark.parametrize(("exc", "want"), [
    (IndexError(), "an index was out of range (no further details were given)"),  # onnxruntime's empty IndexError
    (KeyError("conv1_weights"), "no entry named 'conv1_weights'"),  # onnx2torch's bare key
    (ValueError("ValueError: RuntimeError: shape   mismatch\n  at line 3"), "shape mismatch at line 3"),
    (RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions"), "Got invalid dimensions"),
    (_BrokenStr(), "an unexpected internal error (no further details were given)"),
    (KeyError(_BrokenRepr()), "a required entry was missing (no further details were given)"),
])
def test_short_is_one_readable_line(exc, want):
    assert short(exc) == want


def test_short_keeps_the_limit_and_the_callers_word_for_silence():
    text = short(RuntimeError("x" * 500), 80)
    assert len(text) == 80 and text.endswith("…") and text.startswith("xxx")
    assert short(RuntimeError(""), empty="corrupt or truncated data") == "corrupt or truncated data"
    assert short(RuntimeError("real reason"), empty="corrupt or truncated data") == "real reason"


def test_crash_log_appends_the_whole_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr("studio.core.base.paths.cache_dir", lambda: tmp_path)

    def fails():
        raise ValueError("deep inside the converter")

    for _ in range(2):
        try:
            fails()
        except ValueError as exc:
            path = crash_log(exc)
    text = Path(path).read_text(encoding="utf-8")
    assert path.startswith(str(tmp_path)) and text.count("ValueError: deep inside the converter") == 2
    assert text.count("in fails") == 2 and "Traceback" in text
    assert errors.short(ValueError("deep inside the converter")) == "deep inside the converter"
