"""Flash mode for field technicians: open a bundle (checked at once), tick devices, Flash, read each result in
plain words. Large controls, no jargon, no tracebacks. Imports neither torch nor TensorFlow nor pyqtgraph, so the
standalone flasher stays small."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QWidget

from studio.core.app import work

from .monitor_text import VERDICT_ICONS, VERDICT_WORDS, ago
from .resources import icon, icons_dir, white_icon
from .tasks import Task, TaskRunner
from .theme import ACCENT
from .widgets import Banner, Card, DropZone, page_layout


def _big(widget: QWidget, points: float = 13.0) -> QWidget:
    font = QFont(widget.font())
    font.setPointSizeF(points)
    widget.setFont(font)
    return widget


class FlashWindow(QWidget):
    def __init__(self, pubkey: str | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Studio Flash")
        self.setWindowIcon(icon("flash"))
        self.resize(760, 820)
        self.pubkey = pubkey
        self.bundle: str | None = None
        self.tasks = TaskRunner(self)
        self.tasks.main_started.connect(self._on_flash_started)
        self.rows: dict[str, QListWidgetItem] = {}  # device name -> its result line
        self.last_checks: dict = {}  # device name -> its newest CheckResult in the monitor history
        self._style()
        box = page_layout(self, "Flash devices", "1. Open the bundle you were given.  2. Tick the devices.  3. Press"
                                                 " Flash. A device only switches to the new model after it passed its"
                                                 " check; otherwise it keeps what it runs now.", margins=28, spacing=14)
        box.addWidget(self._build_bundle_step())
        box.addWidget(self._build_devices_step())
        box.addWidget(self._build_flash_step(), 1)
        self.refresh_devices()
        self._update_button()

    @property
    def task(self) -> Task | None:
        """The flash that is running, if any."""
        return self.tasks.main

    # --- builders ----------------------------------------------------------------------------------------------
    def _style(self) -> None:
        check = (icons_dir() / "check.svg").as_posix()
        self.setStyleSheet("QListWidget::item { padding: 6px; }"
                           " QListWidget::indicator { width: 22px; height: 22px; border-radius: 5px;"
                           " border: 2px solid #8a8f98; }"
                           f" QListWidget::indicator:checked {{ background: {ACCENT}; border-color: {ACCENT};"
                           f" image: url({check}); }}")

    def _build_bundle_step(self) -> Card:
        step1 = Card("1  Bundle")
        self.drop = DropZone("Drop the bundle here, or click to open it")
        self.drop.dropped.connect(self.open_bundle)
        self.drop.clicked.connect(self.choose)
        step1.body.addWidget(self.drop)
        self.verdict = _big(Banner(), 14)
        step1.body.addWidget(self.verdict)
        _big(step1.title, 14)
        return step1

    def _build_devices_step(self) -> Card:
        step2 = Card("2  Devices")
        self.devices = _big(QListWidget(), 13)
        self.devices.setIconSize(QSize(24, 24))
        self.devices.setMinimumHeight(160)
        self.devices.itemChanged.connect(self._update_button)
        step2.body.addWidget(self.devices)
        row = QHBoxLayout()
        for text, slot in (("Select all", lambda: self._check_all(True)), ("Select none",
                                                                          lambda: self._check_all(False))):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        refresh = QPushButton(icon("refresh"), "Refresh")
        refresh.clicked.connect(self.refresh_devices)
        row.addWidget(refresh)
        row.addStretch()
        step2.body.addLayout(row)
        _big(step2.title, 14)
        return step2

    def _build_flash_step(self) -> Card:
        step3 = Card("3  Flash")
        row = QHBoxLayout()
        self.flash = _big(QPushButton(white_icon("flash"), "Flash"), 16)
        self.flash.setObjectName("primary")
        self.flash.setMinimumHeight(56)
        self.flash.setIconSize(QSize(28, 28))
        self.flash.clicked.connect(self.start_flash)
        self.cancel = _big(QPushButton(icon("stop"), "Stop"), 13)
        self.cancel.setMinimumHeight(56)
        self.cancel.clicked.connect(self.stop)
        self.cancel.hide()
        row.addWidget(self.flash, 1)
        row.addWidget(self.cancel)
        step3.body.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        step3.body.addWidget(self.progress)
        self.outcome = _big(Banner(), 14)
        step3.body.addWidget(self.outcome)
        self.results = _big(QListWidget(), 13)
        self.results.setIconSize(QSize(24, 24))
        self.results.setWordWrap(True)
        self.results.setMinimumHeight(120)
        step3.body.addWidget(self.results)
        _big(step3.title, 14)
        return step3

    # --- bundle ------------------------------------------------------------------------------------------------
    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a bundle", "", "Bundles (*.bundle.zip *.zip)")
        if path:
            self.open_bundle(path)

    def open_bundle(self, path: str) -> None:
        self.bundle = None
        self._update_button()
        self.verdict.show_message("info", f"Checking {Path(path).name}…")
        task = Task("Checking the bundle", work.verify, path, self.pubkey)

        def ok(v):
            m = v.manifest
            self.bundle = path
            who = (f"<br>Signed, signature checked ({v.key_fingerprint})." if v.signature_checked else
                   f"<br>Signed, but the signature was not checked: no publisher key was given and no key you"
                   f" trust matches (the bundle names {v.key_fingerprint})." if v.signed else
                   "<br>Not signed.")
            self.verdict.show_message("ok", f"Ready to flash: {m['name']} {m['version']}<span style='font-weight:400;"
                                            f"font-size:10pt'>{who}</span>")
            self._update_button()

        def bad(message):
            self.verdict.show_message("error", f"Do not use this bundle. It failed its check:<br><span style="
                                               f"'font-weight:400;font-size:11pt'>{message}</span>")

        self.tasks.start(task, ok, bad, key="verify")  # a bundle opened since replaces the one being checked

    # --- devices -----------------------------------------------------------------------------------------------
    def refresh_devices(self) -> None:
        from studio.core.base.errors import StudioError
        from studio.core.deploy import inventory

        checked = set(self.checked()) if self.devices.count() else set()
        self.devices.blockSignals(True)
        self.devices.clear()
        try:
            devices = sorted(inventory.load().values(), key=lambda d: d.name)
        except StudioError as exc:
            self.devices.blockSignals(False)
            self.verdict.show_message("error", exc.one_line())
            return
        self.last_checks = _last_checks()
        for d in devices:
            item = QListWidgetItem(icon("device"), "")
            item.setData(Qt.UserRole, d.name)
            self._describe(item, d.name, d.address)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if d.name in checked or len(devices) == 1 else Qt.Unchecked)
            self.devices.addItem(item)
        if not devices:
            self.devices.addItem(QListWidgetItem("No devices yet: ask an engineer to add them (studio devices add)."))
        self.devices.blockSignals(False)
        self._update_button()
        if devices:
            self.tasks.start(Task("Device status", work.statuses), self._show_status, lambda msg: None,
                             key="status")  # a failed refresh leaves the list as it is

    def _show_status(self, rows: list[dict]) -> None:
        by_name = {r["device"]: r for r in rows}
        for i in range(self.devices.count()):
            item = self.devices.item(i)
            r = by_name.get(item.data(Qt.UserRole))
            if r is None:
                continue
            now = ("cannot be reached" if not r["reachable"] else
                   f"runs {r['current']['name']} v{r['current']['version']}" if r["current"] else "runs nothing yet")
            self._describe(item, r["device"], now)

    def _describe(self, item: QListWidgetItem, name: str, now: str) -> None:
        """'name   (what it runs)   · its last check in words', with the verdict's icon."""
        last = self.last_checks.get(name)
        text = f"{name}   ({now})"
        if last is not None:
            text += f"   · {VERDICT_WORDS[last.verdict]}, {ago(last.checked_at)}"
            item.setToolTip(last.reason)
        item.setIcon(icon(VERDICT_ICONS[last.verdict] if last is not None else "device"))
        item.setText(text)

    def checked(self) -> list[str]:
        return [self.devices.item(i).data(Qt.UserRole) for i in range(self.devices.count())
                if self.devices.item(i).data(Qt.UserRole) and self.devices.item(i).checkState() == Qt.Checked]

    def _check_all(self, on: bool) -> None:
        for i in range(self.devices.count()):
            if self.devices.item(i).data(Qt.UserRole):
                self.devices.item(i).setCheckState(Qt.Checked if on else Qt.Unchecked)

    def _update_button(self, *args) -> None:
        busy = self.task is not None
        self.flash.setEnabled(bool(self.bundle) and bool(self.checked()) and not busy)
        self.flash.setToolTip("" if self.bundle else "Open a bundle that passes its check first")

    # --- flash -------------------------------------------------------------------------------------------------
    def start_flash(self) -> None:
        names = self.checked()
        if not self.bundle or not names or self.task is not None:
            return
        self.results.clear()
        self.outcome.hide()
        self.rows = {}
        for name in names:
            item = QListWidgetItem(icon("device"), f"{name}: waiting")
            self.results.addItem(item)
            self.rows[name] = item
        task = Task("Flash", work.push, self.bundle, names, events=True)
        task.progressed.connect(lambda f, m: self.progress.setValue(int(f * 1000)))
        task.event_received.connect(self._device_progress)
        self.tasks.start(task, self._done,
                         lambda msg: self.outcome.show_message("error", f"Nothing was flashed: {msg}"),
                         on_cancel=lambda: self.outcome.show_message("warning", "Stopped. Devices that had not"
                                                                                " switched keep what they ran."))

    def _on_flash_started(self, task: Task) -> None:
        task.finished.connect(self._on_flash_finished)  # after the result is shown, as the window grew to fit both
        self.progress.setValue(0)
        self.progress.show()
        self.cancel.show()
        self._update_button()

    def _device_progress(self, event: dict) -> None:
        item = self.rows.get(event["device"])
        if item is not None:
            item.setText(f"{event['device']}: {event['message']}")

    def _done(self, result) -> None:
        for r in result.results:
            item = self.rows.get(r.device)
            if item is not None:
                item.setIcon(icon("ok" if r.ok else "error"))
                item.setText(f"{r.device}: {r.message}")
                item.setToolTip(r.detail or r.message)
        good = sum(r.ok for r in result.results)
        kind = "ok" if result.ok else "error"
        self.outcome.show_message(kind, f"{good} of {len(result.results)} device(s) run the new bundle." if
                                  result.ok else f"{len(result.results) - good} of {len(result.results)} device(s)"
                                  " were not updated: see below. They still run what they ran before.")
        self.refresh_devices()

    def _on_flash_finished(self) -> None:
        self.cancel.hide()
        self.progress.hide()
        self._update_button()

    def stop(self) -> None:
        self.tasks.cancel_main()

    def closeEvent(self, event):
        self.tasks.shutdown(10)
        super().closeEvent(event)


def _last_checks() -> dict:
    """Each device's newest check in the monitor history; none when there is no history (or it cannot be read)."""
    from studio.core.base.errors import StudioError
    from studio.core.monitor.history import History, db_path

    if not db_path().is_file():
        return {}
    try:
        with History() as history:
            return history.latest()
    except StudioError:
        return {}
