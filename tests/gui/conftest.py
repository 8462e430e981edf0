"""GUI fixtures: the real window on Qt's offscreen platform, with a project file of its own."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")


@pytest.fixture
def app(qapp):
    from studio.gui import theme

    theme.apply(qapp)
    return qapp


@pytest.fixture(autouse=True)
def own_config(tmp_path, monkeypatch):
    """Each GUI test has its own devices, host keys and window settings."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def make_window(app, qtbot, tmp_path):
    """make_window(project=None) -> MainWindow; closed (tasks cancelled) after the test."""
    from studio.core.app.project import Project
    from studio.gui.main_window import MainWindow

    made = []

    def make(project: Project | None = None):
        project = project or Project(path=str(tmp_path / "test.studio.json"))
        w = MainWindow(project)
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        wait_idle(qtbot, w)
        return w

    yield make
    for w in made:
        w.close()


def wait_idle(qtbot, w, timeout_s: float = 300) -> None:
    """Until the window's main task and its background tasks are done."""
    qtbot.waitUntil(lambda: w.tasks.idle, timeout=int(timeout_s * 1000))


@pytest.fixture
def onnx_model(sample_bundles):
    """A small runnable ONNX model (the int8 MNIST sample)."""
    return str(sample_bundles["onnx_dir"] / "model.onnx")
