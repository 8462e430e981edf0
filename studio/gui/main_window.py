"""The studio window: a sidebar of wizard steps over stacked pages, one long task at a time in the status bar,
and the session autosaved to its project file after every change."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from studio import __version__
from studio.core.app import work
from studio.core.app.project import (
    ChosenCandidate,
    ExportedBundle,
    ExportSettings,
    Project,
    PushOutcome,
    SweepSettings,
)
from studio.core.base.errors import StudioError, short
from studio.core.base.paths import config_dir, data_dir
from studio.core.sweep.records import CandidateFinished, SensitivityReady, SweepEvent, SweepFinished
from studio.core.sweep.run_folder import RunFolder

from .graph_window import GraphWindow
from .page_deploy import DeployPage
from .page_export import ExportPage
from .page_load import LoadPage
from .page_monitor import MonitorPage
from .page_optimize import OptimizePage
from .page_preview import PreviewPage
from .resources import icon
from .tasks import Task, TaskRunner
from .widgets import TaskBar

STEPS = [("load", "Load"), ("optimize", "Optimize"), ("preview", "Preview"), ("export", "Export"),
         ("deploy", "Deploy"), ("monitor", "Monitor")]


def settings() -> QSettings:
    return QSettings(str(config_dir() / "window.ini"), QSettings.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, project: Project, dark: bool = False):
        super().__init__()
        self.project = project
        self.tasks = TaskRunner(self)
        self.tasks.main_started.connect(self._on_task_started)
        self.tasks.main_finished.connect(lambda task: self.taskbar.idle())
        self.flash_window = None
        self.setWindowIcon(icon("studio"))
        self.setMinimumSize(1000, 680)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(180)
        for i, (key, label) in enumerate(STEPS, 1):
            item = QListWidgetItem(icon(key), f"{i}  {label}")
            item.setToolTip(f"{label} (Ctrl+{i})")
            self.sidebar.addItem(item)
        self.stack = QStackedWidget()
        self.load = LoadPage()
        self.optimize = OptimizePage()
        self.preview = PreviewPage(dark)
        self.export = ExportPage()
        self.deploy = DeployPage()
        self.monitor = MonitorPage(dark)
        self.checker = work.check  # what Check now runs (a test passes a fake)
        self.check_after_push = False  # the demo checks the devices a push reached
        for page in (self.load, self.optimize, self.preview, self.export, self.deploy, self.monitor):
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        row.addWidget(self.sidebar)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.taskbar = TaskBar()
        self.taskbar.cancel_requested.connect(self.cancel_task)
        self.statusBar().addPermanentWidget(self.taskbar, 1)
        self._save_timer = QTimer(self, singleShot=True, interval=400)
        self._save_timer.timeout.connect(self.save_project)
        self._check_timer = QTimer(self)
        self._check_timer.timeout.connect(self._on_check_timer)
        self._menus()
        self._wire()
        self.sidebar.setCurrentRow(0)
        self._restore_geometry()
        self._restore_check_interval()
        self.restore_project()

    # --- shell -------------------------------------------------------------------------------------------------
    def _menus(self) -> None:
        def action(menu, text, slot, shortcut=None, ic=None):
            a = QAction(icon(ic) if ic else text, text, self) if ic else QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        file = self.menuBar().addMenu("&File")
        action(file, "Open model…", self.load.choose, "Ctrl+O", "load")
        action(file, "Open project…", self.open_project, "Ctrl+Shift+O")
        action(file, "Save project", self.save_now, "Ctrl+S", "save")
        action(file, "Save project as…", self.save_as, "Ctrl+Shift+S")
        file.addSeparator()
        action(file, "Quit", self.close, "Ctrl+Q")
        go = self.menuBar().addMenu("&Go")
        for i, (key, label) in enumerate(STEPS, 1):
            action(go, label, lambda checked=False, r=i - 1: self.go(r), f"Ctrl+{i}", key)
        go.addSeparator()
        action(go, "Flash mode…", self.open_flash, "Ctrl+Shift+F", "flash")
        run = self.menuBar().addMenu("&Run")
        action(run, "Run sweep", self.run_sweep, "Ctrl+R", "play")
        action(run, "Export and verify", self.run_export, "Ctrl+E", "export")
        action(run, "Cancel the running task", self.cancel_task, "Esc", "stop")
        help_menu = self.menuBar().addMenu("&Help")
        action(help_menu, "Keyboard shortcuts", self.show_shortcuts, "F1")
        action(help_menu, "About Studio", lambda: QMessageBox.about(
            self, "About Studio", f"Studio {__version__}\nModel packaging for edge devices: measured, offline."))

    def _wire(self) -> None:
        self.load.load_requested.connect(self.load_model)
        self.load.shapes_changed.connect(self._on_input_shapes)
        self.load.graph_requested.connect(lambda path: self.show_graph(path, Path(path).name))
        self.optimize.run_requested.connect(self.run_sweep)
        self.optimize.settings_changed.connect(self._on_sweep_settings)
        self.preview.candidate_chosen.connect(self._chosen)
        self.preview.use_requested.connect(lambda cid: self.go(3))
        self.preview.debug_requested.connect(self.debug_candidate)
        self.preview.keep_float_requested.connect(self.keep_in_float)
        self.preview.graph_requested.connect(self.show_candidate_graph)
        self.preview.profile.profile_requested.connect(self.profile_candidate)
        self.preview.diff.diff_requested.connect(self.diff_candidate)
        self.preview.diff.graph_windows = self.graph_windows  # a selected layer is highlighted in them
        self.export.export_requested.connect(self.run_export)
        self.export.new_key_requested.connect(self.new_key)
        self.export.settings_changed.connect(self._on_export_settings)
        self.deploy.add_requested.connect(self.add_device)
        self.deploy.refresh_requested.connect(self.refresh_devices)
        self.deploy.probe_requested.connect(self.probe_device)
        self.deploy.trust_requested.connect(self.trust_device)
        self.deploy.push_requested.connect(self.push)
        self.deploy.rollback_requested.connect(self.rollback)
        self.monitor.check_requested.connect(self.check_devices)
        self.monitor.interval_changed.connect(self._on_check_interval)

    def go(self, row: int) -> None:
        self.sidebar.setCurrentRow(row)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join([
            "Ctrl+1 … Ctrl+6   go to Load, Optimize, Preview, Export, Deploy, Monitor",
            "Ctrl+O   open a model", "Ctrl+S   save the project (it is also saved after every change)",
            "Ctrl+R   run the sweep", "Ctrl+E   export and verify the bundle", "Ctrl+Shift+F   flash mode",
            "Esc   cancel the running task", "Ctrl+Q   quit"]))

    def _restore_geometry(self) -> None:
        geometry = settings().value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)

    def closeEvent(self, event):
        settings().setValue("geometry", self.saveGeometry())
        self.save_project()
        self.tasks.shutdown(10)
        if self.flash_window is not None:
            self.flash_window.close()
        for window in self.graph_windows():
            window.close()
        super().closeEvent(event)

    # --- tasks -------------------------------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        """The one long task the status bar shows."""
        return self.tasks.main

    def start(self, task: Task, on_ok, on_error=None, main: bool = True) -> bool:
        """Main tasks are one at a time, shown with progress and Cancel; background ones (status) run quietly, a
        newer one of the same name replacing an older one."""
        def cancelled():
            self.statusBar().showMessage(f"{task.name}: cancelled", 8000)

        if self.tasks.start(task, on_ok, on_error or self.show_error, key=None if main else task.name,
                            on_cancel=cancelled if main else None):
            return True
        self.statusBar().showMessage(f"Busy: {self.task.name}. Wait for it or cancel it (Esc).", 5000)
        return False

    def _on_task_started(self, task: Task) -> None:
        self.taskbar.busy(task.name)
        task.progressed.connect(self.taskbar.progress)

    def cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.taskbar.label.setText(f"{self.task.name}: cancelling…")

    def show_error(self, message: str) -> None:
        """A worker's error, in the page the user is on; the app keeps working."""
        page = self.stack.currentWidget()
        banner = getattr(page, "banner", None)
        if banner is not None:
            banner.show_message("error", message)
        self.statusBar().showMessage(message, 15000)

    # --- project -----------------------------------------------------------------------------------------------
    def schedule_save(self) -> None:
        self._save_timer.start()

    def save_project(self) -> None:
        self._save_timer.stop()
        try:
            self.project.save()
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save the project: {exc}", 15000)

    def save_now(self) -> None:
        self.save_project()
        self.statusBar().showMessage(f"Saved {self.project.path}", 5000)

    def save_as(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", str(data_dir() / "projects"),
                                              "Studio projects (*.studio.json)")
        if path:
            self.project.path = path if path.endswith(".studio.json") else path + ".studio.json"
            self.save_now()

    def open_project(self) -> None:
        from studio.core.base.errors import StudioError

        path, _ = QFileDialog.getOpenFileName(self, "Open project", str(data_dir() / "projects"),
                                              "Studio projects (*.studio.json);;All files (*)")
        if not path:
            return
        try:
            self.project = Project.load(path)
        except StudioError as exc:
            self.show_error(exc.one_line())
            return
        self.restore_project()

    def restore_project(self) -> None:
        """Show the session as it was: model, recipe and grid, measured results, chosen candidate, export."""
        p = self.project
        self.optimize.render(p.sweep)
        self.export.render(p.export)
        self._show_bundle()
        self._show_saved_results(p.chosen.run_dir)
        if p.chosen.candidate:
            self.preview.select(p.chosen.candidate)
        if p.model.path:
            self.load_model(p.model.path)
        self.refresh_devices()
        self.refresh_monitor()

    def _show_saved_results(self, run_dir: str | None) -> None:
        from studio.core.base.errors import StudioError

        run = RunFolder(run_dir) if run_dir else None
        if run and run.has_results:
            try:
                self.preview.set_results(json.loads(run.results.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError, StudioError):  # not JSON, or rows of another (newer) shape
                self.preview.banner.show_message("warning", f"{run.results}: cannot be read; run the sweep again")
        elif run and run.has_journal:
            self.preview.banner.show_message("info", "A sweep was interrupted: run it again (Ctrl+R) to resume"
                                                     " where it stopped.")

    # --- load --------------------------------------------------------------------------------------------------
    def load_model(self, path: str) -> None:
        from studio.core.base.errors import StudioError
        from studio.core.inspect.inspector import inspect_model

        known, asked = self.project.model, self.load.choice(path)
        arch = known if known.arch else asked
        choice = asked if path != known.path else dataclasses.replace(
            known, arch=arch.arch, arch_args=arch.arch_args, trust_code=known.trust_code or asked.trust_code)
        try:
            spec, shapes = choice.arch_spec(), choice.shapes
        except StudioError as exc:
            self.load.show_error(exc.one_line())
            return
        task = Task("Inspecting the model", inspect_model, path, arch=spec, trust_pickle=choice.trust_pickle,
                    shapes=shapes)

        def ok(info):
            changed = path != self.project.model.path
            self.project.model = choice
            if changed:
                self.project.chosen = ChosenCandidate()
                self.preview.clear()
                self.preview.summary.setText("No sweep yet: run one from Optimize (Ctrl+R).")
            self.load.show_info(info)
            self._warm_workers(info)
            self.load.show_shapes(choice.input_shapes)
            self.optimize.set_model(info.inputs, choice.input_shapes)
            self.setWindowTitle(f"Studio — {Path(path).name}")
            self._update_export_source()
            self.schedule_save()

        self.start(task, ok, self.load.show_error)

    def _warm_workers(self, info) -> None:
        """Start the framework workers an optimize of this model will use, in the background, so that the first
        sweep does not wait for torch or TensorFlow to import."""
        from studio.core.base.pool import POOL
        from studio.core.optimize.stage import workers_for

        POOL.warm_in_background(workers_for(info.framework, self.project.sweep.grid.targets))

    def _on_input_shapes(self, texts: tuple[str, ...]) -> None:
        self.project.model = dataclasses.replace(self.project.model, input_shapes=texts)
        if self.load.info is not None:
            self.optimize.set_model(self.load.info.inputs, texts)
        self.schedule_save()

    # --- optimize / preview ------------------------------------------------------------------------------------
    def _on_sweep_settings(self, settings: SweepSettings) -> None:
        self.project.sweep = settings
        self.schedule_save()

    def run_sweep(self) -> None:
        if not self.project.model.path:
            self.go(0)
            self.load.show_error("Load a model first (Ctrl+O).")
            return
        if not self.optimize.run.isEnabled():
            self.go(1)
            return
        p = self.project
        model, grid, dataset = p.model.path, p.sweep.grid, p.sweep.dataset
        try:
            options = p.sweep.options(p.model)
        except StudioError as exc:  # a quality gate or input shape written wrong
            self.go(1)
            self.optimize.banner.show_message("error", exc.one_line())
            return
        run_dir = str(work.sweep_dir(model, grid, dataset, options))
        task = Task("Sweep", work.sweep, model, grid, dataset, run_dir, options, events=True)
        task.event_received.connect(self._sweep_event)

        def ok(doc):
            self.preview.set_results(doc)
            left = len(doc.get("pending") or [])
            if left:
                self.preview.banner.show_message("info", f"The time budget ran out with {left} candidate(s) left:"
                                                         " run the sweep again to continue.")
            else:
                self.preview.banner.hide()
            self.statusBar().showMessage(f"Sweep finished: {len(doc['candidates'])} candidates in {run_dir}", 10000)

        if self.start(task, ok):
            p.chosen = ChosenCandidate(run_dir=run_dir)
            self.save_project()
            self.preview.clear()
            self.preview.banner.hide()
            self.go(2)

    def _sweep_event(self, event: SweepEvent) -> None:
        if isinstance(event, CandidateFinished):
            self.preview.add_candidate(event)
        elif isinstance(event, SensitivityReady):
            self.preview.set_sensitivity(event.sensitivity)
        elif isinstance(event, SweepFinished):  # also when interrupted: show the front and pick as written
            self.preview.set_results(event.results)

    def debug_candidate(self, cid: str) -> None:
        """Per-layer error of an int8 candidate of the current run, shown in Preview."""
        from studio.core.sweep.quant_debug import debug_candidate

        run_dir = self.project.chosen.run_dir
        if run_dir:
            self.start(Task("Quantization debugger", debug_candidate, str(Path(run_dir) / cid)),
                       self.preview.show_debug)

    def profile_candidate(self, cid: str) -> None:
        """Where one run of a candidate of the current run spends its time, per operator type, shown in Preview."""
        from studio.core.look.profile import profile_model

        run_dir = self.project.chosen.run_dir
        if run_dir:
            self.start(Task("Profiling operators", profile_model, str(Path(run_dir) / cid)),
                       lambda report: self.preview.profile.show_profile(cid, report))

    def show_graph(self, path: str, title: str):
        """A model's graph in Netron, in a window of its own (closed with this one); returns the window."""
        window = GraphWindow(path, title, parent=self)
        self.preview.diff.follow(window)
        window.show()
        return window

    def show_candidate_graph(self, cid: str):
        run_dir = self.project.chosen.run_dir
        return self.show_graph(str(Path(run_dir) / cid), cid) if run_dir else None

    def graph_windows(self) -> list[GraphWindow]:
        return self.findChildren(GraphWindow)

    def diff_candidate(self, cid: str) -> None:
        """A candidate of the current run against its source: graph changes, per-layer error, disagreeing samples."""
        from studio.core.look.candidate import diff_candidate

        run_dir = self.project.chosen.run_dir
        if run_dir:
            self.start(Task("Comparing with the source", diff_candidate, str(Path(run_dir) / cid),
                            labels=self.project.export.labels), self.preview.diff.show_diff)

    def keep_in_float(self, cid: str, nodes: tuple[str, ...]) -> None:
        """The candidate made again with `nodes` in float, measured and added to the run and the chart."""
        from studio.core.sweep.quant_debug import keep_in_float

        run_dir = self.project.chosen.run_dir
        if not run_dir:
            return

        def ok(row) -> None:
            self._show_saved_results(run_dir)
            self.preview.select(row.id)
            self.statusBar().showMessage(f"Added {row.id}: {len(row.float_layers)} layer(s) in float", 10000)

        self.start(Task(f"Keeping {len(nodes)} layer(s) in float", keep_in_float, str(Path(run_dir) / cid), nodes),
                   ok)

    def _chosen(self, cid: str) -> None:
        self.project.chosen = dataclasses.replace(self.project.chosen, candidate=cid)
        self._update_export_source()
        self.schedule_save()

    # --- export ------------------------------------------------------------------------------------------------
    def export_source(self) -> str | None:
        chosen, model = self.project.chosen, self.project.model.path
        if chosen.candidate and chosen.run_dir:
            return str(RunFolder(chosen.run_dir).candidate(chosen.candidate))
        if model and Path(model).suffix in (".onnx", ".tflite"):
            return model
        return None

    def _update_export_source(self) -> None:
        model, chosen = self.project.model.path, self.project.chosen.candidate
        stem = Path(model).stem.replace("_", "-") if model else "model"
        if chosen:
            c = self.preview.candidates.get(chosen)
            acc, agree, ms = (c.accuracy, c.agreement, c.latency_ms_median) if c else (None, None, None)
            text = (f"Candidate <b>{chosen}</b> of the sweep: {acc or agree or 0:.2f}%"
                    f" {'accuracy' if acc is not None else 'agreement'}, {ms or 0:.4f} ms median (measured).")
        elif self.export_source():
            text = f"The loaded model as it is: <b>{Path(model or '').name}</b>."
        else:
            text = "Nothing to export yet: run a sweep and pick a candidate in Preview (a PyTorch or Keras model" \
                   " must be converted first)."
        version = self.export.version.text() or "1.0.0"
        self.export.set_source(text, stem, data_dir() / "bundles" / f"{stem}-{version}.bundle.zip")

    def _on_export_settings(self, settings: ExportSettings) -> None:
        self.project.export = settings
        self.schedule_save()

    def new_key(self) -> None:
        from studio.core.base.errors import StudioError
        from studio.core.bundle.signing import new_keypair

        path, _ = QFileDialog.getSaveFileName(self, "New signing key", str(data_dir() / "keys" / "studio.key"))
        if not path:
            return
        try:
            private, _public = new_keypair(path)
        except StudioError as exc:
            self.export.show_result(False, exc.one_line())
            return
        self.export.key.setText(str(private))

    def run_export(self) -> None:
        source = self.export_source()
        if source is None:
            self.go(3)
            self.export.show_result(False, "Choose a candidate in Preview first (or load an ONNX/TFLite model).")
            return
        v = self.export.settings()
        if not v.name or not v.out.endswith(".zip"):
            self.export.show_result(False, "Give the bundle a name and a file name ending in .bundle.zip.")
            return
        Path(v.out).parent.mkdir(parents=True, exist_ok=True)
        task = Task("Export", work.export, source, v.out, name=v.name, version=v.version, labels=v.labels,
                    sign_key=v.sign_key, dataset=self.project.sweep.dataset)

        def ok(res):
            m = res["manifest"]
            sig = (f"signature checked ({res['key_fingerprint']})" if res["signature_checked"] else
                   f"signed by {res['key_fingerprint']}" if res["key_fingerprint"] else "unsigned")
            self.export.show_result(True, f"Verified: {m['name']} {m['version']}, {res['files']} files, {sig}.",
                                    f"Bundle <b>{res['bundle']}</b><br>id {m['id']}, {m['format']},"
                                    f" needs {m['runtime']['name']} ≥ {m['runtime']['min_version']}")
            self.project.export = v
            self.project.bundle = ExportedBundle(res["bundle"], id=m["id"], verified=True)
            self._show_bundle()
            self.save_project()

        self.start(task, ok, lambda msg: self.export.show_result(False, msg))

    # --- deploy ------------------------------------------------------------------------------------------------
    def _show_bundle(self) -> None:
        bundle = self.project.bundle
        if bundle and Path(bundle.path).is_file():
            self.deploy.bundle.setText(f"<b>{Path(bundle.path).name}</b> ({bundle.id}), verified"
                                       " when exported and again before every push.")
        else:
            self.deploy.bundle.setText("No bundle yet: export one first (Ctrl+4).")

    def refresh_devices(self) -> None:
        from studio.core.base.errors import StudioError
        from studio.core.deploy import inventory, known_hosts

        try:
            devices = sorted(inventory.load().values(), key=lambda d: d.name)
        except StudioError as exc:
            self.deploy.banner.show_message("error", exc.one_line())
            return
        trusted = {d.name: d.kind == "local" or known_hosts.lookup(d.host, d.port) is not None for d in devices}
        chosen = list(self.project.deploy.devices) or [d.name for d in devices if "demo" in d.tags]
        self.deploy.set_devices(devices, trusted, chosen)
        self.monitor.set_devices([d.name for d in devices])
        self.optimize.set_devices([d.name for d in devices], self.project.sweep.device)
        if devices:
            self.refresh_devices_status()

    def add_device(self) -> None:
        from studio.core.base.errors import StudioError
        from studio.core.deploy import inventory

        from .page_deploy import AddDeviceDialog

        dialog = AddDeviceDialog(self)
        if not dialog.exec():
            return
        try:
            inventory.add(dialog.device())
        except StudioError as exc:
            self.deploy.banner.show_message("error", exc.one_line())
            return
        self.deploy.banner.show_message("ok", f"Added {dialog.device().name}. Trust its host key before pushing.")
        self.refresh_devices()

    def probe_device(self, name: str) -> None:
        def ok(doc):
            runtimes = ", ".join(f"{k} {v}" for k, v in doc["runtimes"].items()) or "none found"
            cur = doc["current"]
            self.deploy.details.setText(
                f"<b>{name}</b>: {doc['arch']}, {doc['os']}, Python {doc['python']}<br>runtimes: {runtimes}<br>"
                f"free disk: {doc['free_bytes'] / 1e6:.1f} MB in {doc['dir']}<br>"
                f"runs: {cur['name'] + ' ' + cur['version'] if cur else 'nothing installed'}")

        self.start(Task(f"Probing {name}", work.probe, name), ok,
                   lambda msg: self.deploy.banner.show_message("error", msg))

    def trust_device(self, name: str) -> None:
        from studio.core.deploy import inventory, ops

        from .page_deploy import TrustDialog

        if inventory.get(name).kind == "local":
            self.deploy.banner.show_message("info", f"{name} is a folder on this machine: there is no key to trust.")
            return

        def ok(res):
            device, fp, key, previous = res
            if TrustDialog(device, fp, previous, self).exec():
                ops.trust(device, key)
                self.deploy.banner.show_message("ok", f"Trusted {name} ({fp}).")
                self.refresh_devices()

        self.start(Task(f"Fetching {name}'s host key", work.fingerprint, name), ok,
                   lambda msg: self.deploy.banner.show_message("error", msg))

    def push(self, names: list[str]) -> None:
        bundle = self.project.bundle
        if not bundle or not Path(bundle.path).is_file():
            self.deploy.banner.show_message("error", "Export a bundle first (Ctrl+4).")
            return
        if not names:
            self.deploy.banner.show_message("info", "Tick the devices to push to.")
            return
        self.project.deploy = dataclasses.replace(self.project.deploy, devices=tuple(names))
        task = Task("Push", work.push, bundle.path, names, events=True)
        task.event_received.connect(lambda e: self.deploy.set_progress(e["device"], e["fraction"], e["message"]))

        def ok(result):
            self.deploy.set_results(result.results)
            counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
            self.deploy.banner.show_message("ok" if result.ok else "error", f"{result.bundle}: {counts}.")
            self.project.deploy = dataclasses.replace(self.project.deploy,
                                                      last=tuple(PushOutcome.of(r) for r in result.results))
            self.save_project()
            self.refresh_devices_status()
            reached = [r.device for r in result.results if r.ok]
            if reached and self.check_after_push:
                self.check_devices(reached)
            elif reached:
                self.monitor.banner.show_message("info", "Pushed: Check now records the first check of the new"
                                                         " release, which later checks are compared with.")

        self.start(task, ok, lambda msg: self.deploy.banner.show_message("error", msg))

    def refresh_devices_status(self) -> None:
        self.start(Task("Device status", work.statuses), self.deploy.set_status,
                   lambda msg: self.deploy.banner.show_message("error", msg), main=False)

    def rollback(self, name: str) -> None:
        def ok(doc):
            self.deploy.banner.show_message("ok", f"{name} rolled back: it now runs {doc['current']}"
                                                  f" (was {doc['previous']}).")
            self.refresh_devices_status()

        self.start(Task(f"Rolling back {name}", work.rollback, name), ok,
                   lambda msg: self.deploy.banner.show_message("error", msg))

    # --- flash ---------------------------------------------------------------------------------------------------
    def open_flash(self) -> None:
        from .flash import FlashWindow

        if self.flash_window is None:
            self.flash_window = FlashWindow()
        bundle = self.project.bundle
        if bundle and Path(bundle.path).is_file() and not self.flash_window.bundle:
            self.flash_window.open_bundle(bundle.path)
        self.flash_window.show()
        self.flash_window.raise_()

    # --- monitor -------------------------------------------------------------------------------------------------
    def refresh_monitor(self) -> None:
        """The Monitor page from the check history (nothing is created when there is none yet)."""
        from studio.core.monitor.history import History, db_path

        if not db_path().is_file():
            self.monitor.show_history([])
            return
        try:
            with History() as history:
                self.monitor.show_history(history.rows())
        except StudioError as exc:
            self.monitor.banner.show_message("error", exc.one_line())
        except (OSError, sqlite3.Error) as exc:
            self.monitor.banner.show_message("error", f"{db_path()}: cannot be read ({short(exc)})")

    def check_devices(self, names: list[str] | None = None) -> bool:
        """Check the named devices (all when none are named) off the GUI thread; each row fills in as it ends."""
        if not self.monitor.rows:
            self.monitor.banner.show_message("info", "No devices yet: add one on the Deploy page (Ctrl+5).")
            return False
        task = Task("Checking devices", self.checker, list(names or []), events=True)
        task.event_received.connect(self.monitor.add_result)

        def ok(results) -> None:
            bad = [r for r in results if r.verdict.value != "ok"]
            self.monitor.banner.show_message(
                "ok" if not bad else "warning", f"{len(results)} device(s) checked: all ok." if not bad else
                f"{len(bad)} of {len(results)} need attention: " + "; ".join(f"{r.device} {r.verdict.value}"
                                                                              f" ({r.reason})" for r in bad[:3]))

        def ended(_=None) -> None:
            self.monitor.set_busy(False)
            self.refresh_monitor()

        task.finished.connect(ended)
        if not self.start(task, ok, lambda msg: self.monitor.banner.show_message("error", msg)):
            return False
        self.monitor.set_busy(True)
        self.monitor.set_checking(list(names or []))
        return True

    def _restore_check_interval(self) -> None:
        minutes = int(settings().value("monitor/interval_min", 0) or 0)
        self.monitor.set_interval(minutes)
        self._on_check_interval(minutes, save=False)

    def _on_check_interval(self, minutes: int, save: bool = True) -> None:
        if save:
            settings().setValue("monitor/interval_min", minutes)
        if minutes > 0:
            self._check_timer.start(minutes * 60_000)
        else:
            self._check_timer.stop()

    def _on_check_timer(self) -> None:
        if self.task is None:  # never queued behind a sweep or a push: the next tick checks again
            self.check_devices()
