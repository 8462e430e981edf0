"""The whole demo, driven like a user; responsiveness during a sweep; worker errors; many signals; restarts."""
from __future__ import annotations

import itertools
import shutil
import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction

from tests.gui.conftest import wait_idle


def test_demo_flow_load_to_deploy_then_restart_loses_nothing(app, qtbot, tmp_path, monkeypatch, samples):
    from studio.core.app.project import Project
    from studio.core.base.paths import data_dir
    from studio.gui.app import open_window
    from studio.gui.main_window import MainWindow

    monkeypatch.setattr("studio.core.app.project.runs_dir", lambda: tmp_path / "runs")  # measure afresh
    shutil.rmtree(data_dir() / "demo-device", ignore_errors=True)
    w = open_window(demo=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.load.info is not None and w.task is None, timeout=600_000)
    # Load: the sample model, its dataset and the demo device are there without any set-up
    assert w.project.model.path == samples["torch_model"] and w.load.banner.property("kind") == "ok"
    assert w.optimize.dataset.text() == samples["dataset"]
    wait_idle(qtbot, w)
    assert w.deploy.checked() == ["demo"]
    shortcuts = {a.shortcut().toString() for a in w.findChildren(QAction)}
    assert {"Ctrl+1", "Ctrl+5", "Ctrl+O", "Ctrl+S", "Ctrl+R", "Ctrl+E", "Ctrl+Shift+F", "Esc"} <= shortcuts
    # Optimize -> Preview: points appear while the sweep still runs
    seen_live = []
    w.run_sweep()
    assert w.sidebar.currentRow() == 2
    qtbot.waitUntil(lambda: bool(w.preview.candidates) or w.task is None, timeout=600_000)
    seen_live.append(w.task is not None and len(w.preview.chart.scatter.points()) >= 1)
    wait_idle(qtbot, w, 900)
    assert seen_live == [True]
    cands = w.preview.candidates
    assert len(cands) == 8 and all(c.status == "ok" for c in cands.values())
    assert len(w.preview.chart.scatter.points()) == 8
    assert w.preview.sens_kind.count() >= 1  # per-layer sensitivity measured too
    best = min((c for c in cands.values() if c.pareto), key=lambda c: c.latency_ms_median).id
    w.preview.select(best)
    # Export (verified) -> Deploy to the local demo device
    w.go(3)
    w.run_export()
    wait_idle(qtbot, w)
    assert w.export.banner.property("kind") == "ok", w.export.banner.text()
    w.go(4)
    w.push(w.deploy.checked())
    wait_idle(qtbot, w)
    assert w.deploy.table.item(0, 5).text() == "Installed v1.0.0, check passed"
    assert w.deploy.table.item(0, 2).text() == "mnist-demo 1.0.0"
    project_path = w.project.path
    w.close()
    # a restart shows the same session: measured results, chosen candidate, bundle
    again = MainWindow(Project.load(project_path))
    qtbot.addWidget(again)
    wait_idle(qtbot, again)
    assert set(again.preview.candidates) == set(cands)
    assert again.preview.candidates[best].accuracy == cands[best].accuracy
    assert again.preview.selected == best and again.project.chosen.candidate == best
    assert "mnist-demo-1.0.0.bundle.zip" in again.deploy.bundle.text()
    assert again.load.info is not None and again.optimize.dataset.text() == samples["dataset"]
    again.close()


def test_window_stays_responsive_during_a_sweep_timed_on_a_device(make_window, qtbot, samples, tmp_path,
                                                                   monkeypatch):
    from studio.core.app.project import ModelChoice, Project, SweepSettings
    from studio.core.deploy import inventory
    from studio.core.recipe.grid import Grid

    monkeypatch.setattr("studio.core.app.project.runs_dir", lambda: tmp_path / "runs")
    inventory.add(inventory.demo_device(tmp_path / "board"))
    grid = Grid(targets=("onnx",), quant=("none", "dynamic"))
    w = make_window(Project(model=ModelChoice(samples["torch_model"]),
                            sweep=SweepSettings(grid=grid, dataset=samples["dataset"], device="demo"),
                            path=str(tmp_path / "p.studio.json")))
    assert w.optimize.device.currentData() == "demo"
    beats: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: beats.append(time.monotonic()))
    timer.start()
    w.run_sweep()
    assert w.task is not None
    wait_idle(qtbot, w, 600)
    timer.stop()
    assert len(w.preview.candidates) == 2
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert len(gaps) > 100, "the sweep was too short to say anything"
    assert max(gaps) < 0.2, f"the GUI thread stalled for {max(gaps) * 1000:.0f} ms"
    # host and device latency side by side
    device_ms = [c.device_latency_ms_median for c in w.preview.candidates.values()]
    assert all(isinstance(v, float) and v > 0 for v in device_ms)
    assert w.preview.latency_mode.isEnabled()
    w.preview.latency_mode.setCurrentIndex(1)
    xs = sorted(p.pos().x() for p in w.preview.chart.scatter.points())
    assert xs == sorted(device_ms)


def test_worker_errors_show_in_the_window_and_it_keeps_working(make_window, qtbot, tmp_path, onnx_model):
    from studio.core.app.project import ModelChoice, Project, SweepSettings
    from studio.gui.tasks import Task

    broken = tmp_path / "data.npz"
    broken.write_bytes(b"not a zip at all")
    w = make_window(Project(model=ModelChoice(onnx_model), sweep=SweepSettings(dataset=str(broken)),
                            path=str(tmp_path / "p.studio.json")))
    w.run_sweep()
    wait_idle(qtbot, w)
    banner = w.preview.banner
    assert banner.property("kind") == "error" and "data.npz" in banner.text() and "Traceback" not in banner.text()

    def explode(report=None, cancel=None):
        raise RuntimeError("converter blew up")

    w.start(Task("Exploding", explode), lambda _: None)
    wait_idle(qtbot, w)
    assert "unexpected failure: converter blew up" in banner.text() and "RuntimeError" not in banner.text()
    assert "crash.log" in banner.text()
    # still working: the next task runs
    w.load_model(onnx_model)
    wait_idle(qtbot, w)
    assert w.load.banner.property("kind") == "ok"


def test_thousands_of_signals_from_a_worker_arrive_in_order(make_window, qtbot):
    """PySide6 6.12.0 aborts after about a thousand cross-thread emits on Python 3.11; 6.11.3 must not."""
    from studio.gui.tasks import Task

    got, fractions = [], []

    def chatty(report, cancel, on_event):
        for i in range(5000):
            report(i / 5000, f"step {i}")
            on_event({"i": i})
        return "done"

    task = Task("Chatty", chatty, events=True)
    task.event_received.connect(lambda e: got.append(e["i"]))
    task.progressed.connect(lambda f, m: fractions.append(f))
    result = []
    w = make_window()
    w.start(task, result.append)
    wait_idle(qtbot, w, 120)
    assert result == ["done"] and got == list(range(5000)) and len(fractions) == 5000


def test_cancel_stops_a_sweep_and_keeps_what_was_measured(make_window, qtbot, samples, tmp_path, monkeypatch):
    from studio.core.app.project import ModelChoice, Project, SweepSettings
    from studio.core.recipe.grid import Grid

    monkeypatch.setattr("studio.core.app.project.runs_dir", lambda: tmp_path / "runs")
    grid = Grid(targets=("onnx",), quant=("none", "dynamic", "int8", "fp16"))
    w = make_window(Project(model=ModelChoice(samples["torch_model"]),
                            sweep=SweepSettings(grid=grid, dataset=samples["dataset"]),
                            path=str(tmp_path / "p.studio.json")))
    w.run_sweep()
    qtbot.waitUntil(lambda: len(w.preview.candidates) >= 1, timeout=300_000)
    w.cancel_task()
    wait_idle(qtbot, w, 300)
    assert "cancelled" in w.statusBar().currentMessage()
    measured = set(w.preview.candidates)
    journal = (tmp_path / "runs").glob("*/journal.jsonl")
    assert len(next(journal).read_text().splitlines()) >= len(measured) >= 1
    w.run_sweep()  # resumes: finished candidates are not measured again
    wait_idle(qtbot, w, 300)
    assert len(w.preview.candidates) == 4
