"""A full inspection of an ONNX or TFLite file is kept: read back without a worker while the file is unchanged, and
made again when the file, one of its data files or its cache entry changes; a runtime crash is never kept."""
import os

import onnx
import pytest

from studio.core.inspect import cache, inspector
from studio.core.inspect.inspector import inspect_model
from tests.core.onnx_fixtures import onnx_weight_count, paddle_style
from tests.core.test_inspect_formats import small_onnx
from tests.core.tflite_models import convstack_tflite


@pytest.fixture
def no_workers(monkeypatch):
    """Inspections from here on may not start a worker: only the cache can answer."""
    def refuse(*args, **kwargs):
        raise AssertionError("a worker was started")

    def forbid():
        monkeypatch.setattr(inspector, "run_job", refuse)
    return forbid


def _save(model, path):
    onnx.save(model, str(path))
    return path


def test_an_unchanged_file_is_answered_from_the_cache(tmp_path, no_workers):
    path = _save(paddle_style(seed=0), tmp_path / "paddle.onnx")
    first = inspect_model(path)
    no_workers()
    again = inspect_model(path)
    assert again == first and again is not first
    assert again.params == onnx_weight_count(paddle_style(seed=0))  # the first inspection's count, kept
    tfl = convstack_tflite(tmp_path / "conv.tflite")
    with pytest.raises(AssertionError, match="a worker was started"):
        inspect_model(tfl)  # never inspected: only a worker can say


def test_a_changed_file_is_inspected_again(tmp_path):
    path = _save(paddle_style(seed=0), tmp_path / "m.onnx")
    first = inspect_model(path)
    before = path.stat()
    _save(paddle_style(h="H", w="W", seed=1), path)  # the same size, new weights and input dims
    assert path.stat().st_size == before.st_size
    again = inspect_model(path)
    assert again.inputs[0].shape == ["batch", 3, "H", "W"] != first.inputs[0].shape


def test_a_changed_data_file_is_inspected_again(tmp_path):
    path = small_onnx(tmp_path / "ext.onnx", external=True)
    assert inspect_model(path).runnable
    data = tmp_path / "ext.onnx.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(Exception, match=r"ext\.onnx\.data' is truncated"):
        inspect_model(path)


def test_a_damaged_entry_is_ignored(tmp_path, no_workers):
    path = _save(paddle_style(), tmp_path / "m.onnx")
    first = inspect_model(path)
    for entry in (cache.cache_dir() / "inspections").iterdir():
        entry.write_bytes(b"not a pickle")
    assert inspect_model(path) == first  # inspected again, and kept again
    no_workers()
    assert inspect_model(path) == first


def test_a_runtime_crash_is_not_kept(tmp_path, monkeypatch):
    from studio.core.inspect.modelinfo import Problem

    path = _save(paddle_style(), tmp_path / "m.onnx")
    real = inspector.run_job

    def crashing_probe(fn, *args, **kwargs):
        if fn is inspector._probe:
            raise inspector.JobCrashed("onnxruntime crashed (SIGSEGV)")
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(inspector, "run_job", crashing_probe)
    crashed = inspect_model(path)
    assert Problem("error", "runtime-crashed", "onnxruntime crashed (SIGSEGV)") in crashed.problems
    monkeypatch.setattr(inspector, "run_job", real)
    assert inspect_model(path).runnable  # checked again, not read back


def test_other_formats_and_partial_inspections_are_not_kept(tmp_path):
    path = _save(paddle_style(), tmp_path / "m.onnx")
    inspect_model(path, probe=False)  # a result's inspection in optimize: no runtime check, nothing kept
    inspect_model(path, isolate=False)
    folder = cache.cache_dir() / "inspections"
    assert not folder.exists() or not [e for e in folder.iterdir() if _holds(e, path)]


def _holds(entry, path) -> bool:
    import pickle

    try:
        return pickle.loads(entry.read_bytes())[1].path == os.fspath(path)
    except Exception:  # noqa: BLE001
        return False


def test_the_cache_keeps_the_most_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # this test's entries only
    paths = [_save(paddle_style(seed=i), tmp_path / f"m{i}.onnx") for i in range(3)]
    folder = cache.cache_dir() / "inspections"
    for when, p in enumerate(paths[:2]):
        inspect_model(p)
        for entry in folder.iterdir():  # m0 used long ago, m1 later (file times are too coarse to order)
            if _holds(entry, p):
                os.utime(entry, ns=(10 ** 9 * (when + 1), 10 ** 9 * (when + 1)))
    inspect_model(paths[2])
    assert [p.name for p in paths if any(_holds(e, p) for e in folder.iterdir())] == ["m1.onnx", "m2.onnx"]
