"""The task runner and the settings binding, without the window: what they promise, on the offscreen platform."""
from __future__ import annotations

import threading

import pytest

from studio.gui.tasks import Task, TaskRunner


def _gated(gate: threading.Event, value):
    def run(report, cancel):
        gate.wait(30)
        cancel.raise_if_cancelled()
        return value
    return run


def test_a_keyed_task_replaces_the_one_before_and_its_result_is_dropped(app, qtbot):
    runner = TaskRunner()
    got, cancelled = [], []
    first, second = threading.Event(), threading.Event()
    a = Task("check", _gated(first, "a"))
    assert runner.start(a, got.append, got.append, key="verify", on_cancel=lambda: cancelled.append("a"))
    assert runner.start(Task("check", _gated(second, "b")), got.append, got.append, key="verify")
    assert a.token.cancelled  # starting the second cancelled the first
    first.set()
    second.set()
    qtbot.waitUntil(lambda: runner.idle, timeout=30_000)
    assert got == ["b"] and cancelled == []  # the replaced task's outcome reaches no handler


def test_one_main_task_at_a_time_and_handlers_run_on_the_gui_thread(app, qtbot):
    runner = TaskRunner()
    started, ended, threads, got = [], [], [], []
    runner.main_started.connect(lambda t: started.append(t.name))
    runner.main_finished.connect(lambda t: ended.append(t.name))
    gate = threading.Event()
    assert runner.start(Task("one", _gated(gate, 1)), got.append, got.append)
    assert runner.main is not None and runner.main.name == "one" and started == ["one"]
    assert not runner.start(Task("two", _gated(gate, 2)), got.append, got.append)  # refused while one runs
    assert started == ["one"]

    def failing(report, cancel):
        raise ValueError("bad input")

    def on_error(message):
        threads.append(threading.current_thread() is threading.main_thread())
        got.append(message)
        assert runner.main is None  # let go before the handler, so it could start the next task

    gate.set()
    qtbot.waitUntil(lambda: runner.idle, timeout=30_000)
    assert got == [1] and ended == ["one"]
    assert runner.start(Task("three", failing), got.append, on_error)
    qtbot.waitUntil(lambda: runner.idle, timeout=30_000)
    assert threads == [True] and got[1].startswith("unexpected failure: bad input (a bug in Studio")


def test_shutdown_cancels_and_waits(app, qtbot):
    runner = TaskRunner()
    stopped = threading.Event()

    def until_cancelled(report, cancel):
        while not cancel.cancelled:
            stopped.wait(0.01)
        stopped.set()

    runner.start(Task("long", until_cancelled), lambda _: None, lambda _: None)
    runner.start(Task("status", until_cancelled), lambda _: None, lambda _: None, key="status")
    runner.shutdown(10)
    assert stopped.is_set()


@pytest.fixture
def page(app, qtbot):
    from studio.gui.page_optimize import OptimizePage

    p = OptimizePage()
    qtbot.addWidget(p)
    return p


def test_optimize_page_renders_settings_without_echo_and_emits_what_it_shows(page, qtbot):
    from studio.core.app.project import SweepSettings
    from studio.core.recipe.grid import Grid
    from studio.core.recipe.recipe import CalibMethod, Layout, Preprocess, Quantization, Recipe, Runtime

    base = Recipe(quantization=Quantization(calibration="entropy", per_channel=False, calib_samples=42),
                  preprocess=Preprocess(scale=0.5, layout="nhwc", mean=(0.1,), std=(0.2,)),
                  runtime=Runtime(threads=3, opset=13))
    shown = SweepSettings(grid=Grid(targets=("tflite",), quant=("none", "fp16"), prune=(0.0, 0.3),
                                    prune_method="unstructured", prune_scope="global", finetune_epochs=2,
                                    base=base),
                          dataset="/d.npz", train_dataset="/t.npz", max_drop=1.5, budget_min=7, sensitivity=False)
    emitted = []
    page.settings_changed.connect(emitted.append)
    page.render(shown)
    assert emitted == []  # a restore is not an edit
    assert page.settings() == shown  # every value reached its widget and reads back the same
    from studio.gui.page_optimize import FIELDS

    assert set(FIELDS) == set(page.binding.fields)  # both directions walk one table that names every widget
    assert (page.calib.currentText(), page.layout_combo.currentText(), page.prune.text()) == ("entropy", "nhwc",
                                                                                              "0, 0.3")
    assert "4</b> candidates" in page.count.text() and page.run.isEnabled()
    page.threads.setValue(5)
    assert len(emitted) == 1 and emitted[0].grid.base.runtime.threads == 5
    kept = emitted[0].grid.base  # what the page has no widget for is kept, not reset
    assert (kept.preprocess.mean, kept.runtime.opset, kept.quantization.calibration) == ((0.1,), 13,
                                                                                         CalibMethod.ENTROPY)
    assert kept.preprocess.layout is Layout.NHWC
    page.prune.setText("0, x")  # not a number: shown on the page, nothing emitted
    assert len(emitted) == 1 and not page.run.isEnabled()
