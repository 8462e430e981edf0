"""Starting the window: the QApplication, the theme, the project to open, and the offline demo set-up."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from studio.core.base.errors import StudioError


class NoDisplay(StudioError):
    """There is no screen to open a window on."""


def check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        raise NoDisplay("no display to open the window on: run it in a desktop session (or under xvfb-run);"
                        " `studio demo --terminal` runs the demo without a window")


def application():
    """The one QApplication, themed for the system's light or dark scheme. Returns (app, dark)."""
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtWidgets import QApplication

    from . import theme
    from .resources import icon

    if QApplication.instance() is None:
        QCoreApplication.setAttribute(Qt.AA_ShareOpenGLContexts)  # QtWebEngine (the graph window) starts later
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Studio")
    app.setOrganizationName("Studio")
    app.setDesktopFileName("studio")
    app.setWindowIcon(icon("studio"))
    return app, theme.apply(app)


def open_window(project_path: str | None = None, demo: bool = False):
    """Build the main window (not yet shown). In demo mode the samples are prepared by a task in the window."""
    from studio.core.app.project import ModelChoice, Project, default_path

    from .main_window import MainWindow

    _, dark = application()
    if demo:
        window = MainWindow(Project(path=str(default_path().parent / "demo.studio.json")), dark)
        start_demo(window)
        return window
    path = Path(project_path) if project_path else default_path()
    if project_path and not path.name.endswith(".studio.json"):
        project = Project(model=ModelChoice(str(path.resolve())))  # a model file: start a new session with it
    elif path.is_file():
        project = Project.load(path)
    else:
        project = Project(path=str(path))
    return MainWindow(project, dark)


def start_demo(window) -> None:
    from studio.core.app import work
    from studio.core.app.demo import demo_project

    from .tasks import Task

    def ready(info):
        window.project = demo_project(info)
        window.project.save()
        window.restore_project()
        window.statusBar().showMessage("Demo ready: the sample model is loaded. Run the sweep (Ctrl+R), pick a"
                                       " candidate, export it and push it to the demo device; Monitor (Ctrl+6)"
                                       " then shows its check.", 20000)

    window.check_after_push = True  # the demo device's first check fills the Monitor page
    window.start(Task("Preparing the demo (the first run trains the sample models, about a minute)",
                      work.demo_setup), ready)


def run(project_path: str | None = None, demo: bool = False) -> int:
    check_display()
    app, _ = application()
    window = open_window(project_path, demo)
    window.show()
    _exit_when_shown(app)
    return app.exec()


def run_flash(bundle: str | None = None, pubkey: str | None = None) -> int:
    check_display()
    app, _ = application()
    from .flash import FlashWindow

    window = FlashWindow(pubkey)
    if bundle:
        window.open_bundle(bundle)
    window.show()
    _exit_when_shown(app)
    return app.exec()


def _exit_when_shown(app) -> None:
    """STUDIO_EXIT_WHEN_SHOWN=1: quit as soon as the window is up (start-up checks of installed builds)."""
    if os.environ.get("STUDIO_EXIT_WHEN_SHOWN") == "1":
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, app.quit)
