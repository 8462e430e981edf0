"""The Monitor page: rendered from a database of 3 devices x 20 checks, Check now off the GUI thread with progress,
cancel and errors, the auto-check interval, and the last verdict in Flash mode."""
from __future__ import annotations

import sys
import threading
from datetime import datetime

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor

from studio.core.monitor.records import Verdict
from tests.gui.conftest import wait_idle
from tests.gui.monitor_data import check, fleet_history


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """A history of three devices in a data dir of the test's own; cam-1 and cam-2 are in the inventory, gate-3
    was removed from it."""
    from studio.core.deploy import inventory
    from studio.core.monitor.history import History

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in ("cam-1", "cam-2"):
        inventory.add(inventory.Device(name=name, kind="local", dir=str(tmp_path / name), python=sys.executable))
    rows = fleet_history()
    with History() as history:
        for r in rows:
            history.record(r)
    return rows


def _cell(page, device: str, col: int) -> str:
    return page.table.item(page.rows[device], col).text()


def _has_color(widget, color: str, tolerance: int = 12) -> bool:
    """Whether any pixel of the widget as drawn is `color` (give or take a little antialiasing)."""
    image = widget.grab().toImage()
    want = QColor(color)
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if abs(c.red() - want.red()) + abs(c.green() - want.green()) + abs(c.blue() - want.blue()) < tolerance:
                return True
    return False


def test_monitor_page_renders_three_devices_with_twenty_checks(make_window, fleet):
    from studio.gui import theme

    w = make_window()
    action = next(a for a in w.findChildren(QAction) if a.shortcut().toString() == "Ctrl+6")
    action.trigger()
    page = w.monitor
    assert w.stack.currentWidget() is page
    last = {r.device: r for r in fleet}  # oldest first, so the newest check of each device wins
    assert sorted(page.rows) == ["cam-1", "cam-2", "gate-3"]
    for name, r in last.items():
        assert _cell(page, name, 2) == r.verdict.value
    assert _cell(page, "cam-1", 1) == "mnist-demo-1.1.0"
    assert _cell(page, "gate-3", 0).endswith("(removed)")
    assert _cell(page, "gate-3", 1) == "mnist-demo-1.0.0 (last known)"  # unreachable: the release it last ran
    over = round((last["cam-2"].latency_ms_median / last["cam-2"].promise_latency_ms - 1) * 100)
    assert f"(+{over}%)" in _cell(page, "cam-2", 3)
    assert page.metrics["ok"].value.text() == "1" and page.metrics["need attention"].value.text() == "2"
    # the device shown first is one that needs attention; its series has every check, slower ones in amber
    assert page.selected == "cam-2"
    cam2 = [r for r in fleet if r.device == "cam-2"]
    chart = page.chart
    assert len(chart.latency.points()) == len(cam2) == 20
    amber = [p for p in chart.latency.points() if p.brush().color().name() == QColor(theme.WARN).name()]
    assert len(amber) == sum(r.verdict is Verdict.SLOWER for r in cam2) == 5
    _x, promise = chart.promise.getData()
    assert set(promise) == {r.promise_latency_ms for r in cam2}
    _x, promised_cosine = chart.promised_cosine.getData()  # the fidelity the bundle promised, on the fidelity plot
    assert set(promised_cosine) == {r.promise_cosine for r in cam2}
    assert chart.promised_cosine in chart.fidelity_plot.getPlotItem().items
    assert _has_color(chart, theme.WARN)
    # cam-1 changed release once: a marker at the first check of each release, in both plots
    page.table.selectRow(page.rows["cam-1"])
    assert page.selected == "cam-1"
    assert {line.value() for _plot, line in chart.markers} == {0, 10} and len(chart.markers) == 4
    ticks = chart.latency_plot.getAxis("bottom")._tickLevels[0]  # the checks' local times, at most 8 of them
    local = [datetime.fromisoformat(check("cam-1", i).checked_at.replace("Z", "+00:00")).astimezone()
             for i in range(20)]
    fmt = "%H:%M" if local[0].date() == local[-1].date() else "%d %b %H:%M"
    assert 2 <= len(ticks) <= 8 and all(label == local[i].strftime(fmt) for i, label in ticks)
    assert not _has_color(chart, theme.WARN)  # all ok: no amber drawn
    # gate-3: drift shows as the fidelity drop, the unreachable check as a mark without latency
    page.table.selectRow(page.rows["gate-3"])
    assert len(chart.unreachable.points()) == 1 and len(chart.latency.points()) == 19
    assert min(p.pos().y() for p in chart.fidelity.points()) == pytest.approx(0.62)
    assert "connection refused" in page.details.text()


def _fake_checker(calls: list, gate: threading.Event | None = None, fail: str | None = None):
    """A stand-in for work.check: records one check per device in the real history, as the core does; waits at
    `gate` (or until cancelled) before the last device."""
    from studio.core.base.errors import StudioError
    from studio.core.monitor.history import History

    def fake(names, *, report, cancel, on_event):
        calls.append((list(names), threading.current_thread() is threading.main_thread()))
        if fail:
            raise StudioError(fail)
        devices = names or ["cam-1", "cam-2"]
        results = []
        with History() as history:
            for i, name in enumerate(devices):
                if i == len(devices) - 1 and gate is not None:
                    while not gate.wait(0.01):
                        cancel.raise_if_cancelled()
                r = check(name, 15 + i)
                history.record(r)
                results.append(r)
                report((i + 1) / len(devices), f"{name}: {r.verdict.value}")
                on_event(r)
        return results

    return fake


def test_check_now_runs_off_the_gui_thread_with_progress_then_cancels_and_reports_errors(make_window, fleet, qtbot):
    w = make_window()
    page = w.monitor
    calls: list = []
    gate = threading.Event()
    w.checker = _fake_checker(calls, gate)
    page.check_all.click()
    assert w.task is not None and w.task.name == "Checking devices"
    assert not page.check_all.isEnabled() and _cell(page, "cam-2", 2) == "checking…"
    # the first device's result shows while the second is still being checked: the GUI thread is free
    qtbot.waitUntil(lambda: len(page.history["cam-1"]) == 21 and w.taskbar.bar.value() == 500)
    assert w.task is not None and _cell(page, "cam-2", 2) == "checking…"
    gate.set()
    wait_idle(qtbot, w)
    assert calls == [([], False)]
    assert page.check_all.isEnabled()
    assert len(page.history["cam-2"]) == 21 and _cell(page, "cam-2", 2) == "slower"
    assert page.banner.property("kind") == "warning" and "cam-2 slower" in page.banner.text()
    # Cancel (Esc) while the last device is being checked: what was checked stays, the rest is left alone
    w.checker = _fake_checker(calls, threading.Event())
    page.table.selectRow(page.rows["cam-1"])
    page.check_one.click()
    assert calls[-1][0] == ["cam-1"]
    w.cancel_task()
    wait_idle(qtbot, w)
    assert "cancelled" in w.statusBar().currentMessage() and page.check_all.isEnabled()
    assert len(page.history["cam-1"]) == 21  # the cancelled check recorded nothing
    # a failure in the worker shows on the page, in one line
    w.checker = _fake_checker(calls, fail="cam-1: cannot be reached")
    page.check_all.click()
    wait_idle(qtbot, w)
    assert page.banner.property("kind") == "error" and page.banner.text() == "cam-1: cannot be reached"


def test_auto_check_interval_is_kept_and_never_queues_behind_another_task(make_window, fleet, qtbot):
    w = make_window()
    calls: list = []
    w.checker = _fake_checker(calls)
    page = w.monitor
    page.interval.setCurrentIndex(page.interval.findData(10))
    assert w._check_timer.isActive() and w._check_timer.interval() == 10 * 60_000
    w._check_timer.timeout.emit()
    wait_idle(qtbot, w)
    assert calls == [([], False)]
    gate = threading.Event()
    w.checker = _fake_checker(calls, gate)
    w.check_devices(["cam-1"])
    w._check_timer.timeout.emit()  # a tick while a task runs is skipped, not queued
    gate.set()
    wait_idle(qtbot, w)
    assert len(calls) == 2
    w.close()
    again = make_window()
    assert again.monitor.interval.currentData() == 10 and again._check_timer.interval() == 10 * 60_000


def test_flash_mode_shows_each_devices_last_verdict(app, qtbot, fleet):
    from studio.gui.flash import FlashWindow

    f = FlashWindow()
    qtbot.addWidget(f)
    texts = {f.devices.item(i).data(Qt.UserRole): f.devices.item(i).text() for i in range(f.devices.count())}
    assert "slower than promised" in texts["cam-2"] and "last check OK" in texts["cam-1"]
    qtbot.waitUntil(lambda: f.tasks.idle)
    texts = {f.devices.item(i).data(Qt.UserRole): f.devices.item(i).text() for i in range(f.devices.count())}
    assert "runs nothing yet" in texts["cam-2"] and "slower than promised" in texts["cam-2"]
    f.close()


def test_check_now_on_a_real_local_device_records_its_release_and_a_slow_spell(make_window, qtbot, sample_bundles,
                                                                               tmp_path, monkeypatch):
    """The real check (work.check over the agent and runner) of a local device the window pushed to: each check is
    a row with the release the device reports; the same device slowed down by STUDIO_DEMO_DELAY_MS is `slower`."""
    from studio.core.app import work
    from studio.core.app.project import ExportedBundle, Project
    from studio.core.deploy import inventory
    from studio.core.monitor.history import History

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    inventory.add(inventory.demo_device(tmp_path / "board"))
    w = make_window(Project(path=str(tmp_path / "p.studio.json"),
                            bundle=ExportedBundle(str(sample_bundles["onnx"]), id="x", verified=True)))
    w.push(["demo"])
    wait_idle(qtbot, w)
    assert w.deploy.table.item(0, 5).text().startswith("Installed"), w.deploy.table.item(0, 5).text()
    running = next(s for s in work.statuses() if s["device"] == "demo")["current"]
    assert w.check_devices()
    wait_idle(qtbot, w)
    monkeypatch.setenv("STUDIO_DEMO_DELAY_MS", "20")
    assert w.check_devices(["demo"])
    wait_idle(qtbot, w)
    with History() as history:
        rows = history.rows("demo")
    assert len(rows) == 2 and all(r.release == running["id"] for r in rows), rows
    assert rows[1].verdict.value == "slower" and rows[1].latency_ms_median > 20
    page = w.monitor
    assert _cell(page, "demo", 2) == "slower" and len(page.chart.latency.points()) == 2
    assert page.banner.property("kind") == "warning" and "demo slower" in page.banner.text()
