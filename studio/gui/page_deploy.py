"""Deploy: devices with their status; add, probe, trust (fingerprint shown), push with per-device progress,
results in plain words, rollback."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.deploy.inventory import Device, key_file

from .resources import icon, white_icon
from .widgets import Banner, Card, help_label, page_layout

COLS = ["Device", "Address", "Runs", "Trusted", "Progress", "Result"]


class AddDeviceDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add a device")
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.host = QLineEdit()
        self.host.setPlaceholderText("address, or leave empty for a folder on this machine")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(22)
        self.user = QLineEdit("root")
        self.key = QLineEdit()
        self.key.setPlaceholderText("private key file (empty: ssh-agent)")
        self.dir = QLineEdit("/opt/studio")
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("comma separated, e.g. lab, pi")
        for label, w in (("Name", self.name), ("Host", self.host), ("Port", self.port), ("User", self.user),
                         ("Key", self.key), ("Install dir", self.dir), ("Tags", self.tags)):
            form.addRow(label, w)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def device(self) -> Device:
        import sys

        tags = tuple(t.strip() for t in self.tags.text().split(",") if t.strip())
        if not self.host.text().strip():
            return Device(name=self.name.text().strip(), kind="local", dir=_absolute(self.dir.text().strip()),
                          tags=tags, python=sys.executable)
        return Device(name=self.name.text().strip(), host=self.host.text().strip(), port=self.port.value(),
                      user=self.user.text().strip(), key=key_file(self.key.text().strip()),
                      dir=self.dir.text().strip(), tags=tags)


def _absolute(folder: str) -> str:
    import os

    return os.path.abspath(folder) if folder else folder


class TrustDialog(QDialog):
    """Shows the fingerprint the device presents; the user compares it with the device's console."""

    def __init__(self, device: Device, fingerprint: str, previous: str | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Trust {device.name}?")
        box = QVBoxLayout(self)
        box.addWidget(QLabel(f"<b>{device.name}</b> ({device.host}:{device.port}) presents this host key:"))
        fp = QLabel(f"<code style='font-size:13pt'>{fingerprint}</code>")
        fp.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.addWidget(fp)
        if previous:
            warn = QLabel(f"<span style='color:#d24b4b'><b>This key has changed.</b> Studio trusted {previous}"
                          " before. Only continue if the device was reinstalled.</span>")
            warn.setWordWrap(True)
            box.addWidget(warn)
        box.addWidget(help_label("Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the"
                                 " device. Studio never trusts a key on its own."))
        buttons = QDialogButtonBox()
        buttons.addButton("Trust this key", QDialogButtonBox.AcceptRole)
        buttons.addButton(QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box.addWidget(buttons)


class DeployPage(QWidget):
    add_requested = Signal()
    probe_requested = Signal(str)
    trust_requested = Signal(str)
    push_requested = Signal(list)
    rollback_requested = Signal(str)
    refresh_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        box = page_layout(self, "Deploy to devices", "A push uploads, verifies and checks the model on the device"
                                                     " before it switches over; on any failure the previous release"
                                                     " stays active.")
        self.bundle = QLabel("No bundle yet: export one first (Ctrl+4).")
        self.bundle.setWordWrap(True)
        card = Card("Bundle")
        card.body.addWidget(self.bundle)
        box.addWidget(card)
        self.banner = Banner()
        box.addWidget(self.banner)
        tools = QHBoxLayout()
        buttons = [("Add device…", "plus", self.add_requested.emit), ("Refresh status", "refresh",
                                                                     self.refresh_requested.emit),
                   ("Probe", "device", lambda: self._one(self.probe_requested)),
                   ("Trust…", "trust", lambda: self._one(self.trust_requested)),
                   ("Roll back", "rollback", lambda: self._one(self.rollback_requested))]
        self.tool_buttons = {}
        for text, ic, slot in buttons:
            b = QPushButton(icon(ic), text)
            b.clicked.connect(slot)
            tools.addWidget(b)
            self.tool_buttons[text] = b
        tools.addStretch()
        self.push = QPushButton(white_icon("deploy"), "Push to selected")
        self.push.setObjectName("primary")
        self.push.clicked.connect(lambda: self.push_requested.emit(self.checked()))
        tools.addWidget(self.push)
        box.addLayout(tools)
        self.table = QTableWidget(0, len(COLS))
        self.table.setHorizontalHeaderLabels(COLS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        box.addWidget(self.table, 1)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.addWidget(self.details)
        self.rows: dict[str, int] = {}

    def _one(self, signal) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.banner.show_message("info", "Select a device in the table first.")
            return
        signal.emit(self.table.item(rows[0].row(), 0).text())

    def checked(self) -> list[str]:
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())
                if self.table.item(r, 0).checkState() == Qt.Checked]

    def set_devices(self, devices: list[Device], trusted: dict[str, bool], selected: list[str]) -> None:
        self.table.setRowCount(len(devices))
        self.rows = {}
        for r, d in enumerate(devices):
            self.rows[d.name] = r
            name = QTableWidgetItem(icon("device"), d.name)
            name.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable | Qt.ItemIsUserCheckable)
            name.setCheckState(Qt.Checked if d.name in selected else Qt.Unchecked)
            name.setToolTip("Tick to include this device in the next push")
            self.table.setItem(r, 0, name)
            self.table.setItem(r, 1, QTableWidgetItem(d.address))
            self.table.setItem(r, 2, QTableWidgetItem("?"))
            self.table.setItem(r, 3, QTableWidgetItem("n/a (local)" if d.kind == "local" else
                                                      "yes" if trusted.get(d.name) else "NO"))
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setValue(0)
            self.table.setCellWidget(r, 4, bar)
            self.table.setItem(r, 5, QTableWidgetItem(""))
        self.table.resizeColumnsToContents()

    def set_status(self, rows: list[dict]) -> None:
        for s in rows:
            r = self.rows.get(s["device"])
            if r is None:
                continue
            if not s["reachable"]:
                text = "unreachable"
            elif s["current"]:
                text = f"{s['current']['name']} {s['current']['version']}"
            else:
                text = "nothing installed"
            self.table.setItem(r, 2, QTableWidgetItem(text))

    def set_progress(self, name: str, fraction: float, message: str) -> None:
        r = self.rows.get(name)
        if r is not None:
            self.table.cellWidget(r, 4).setValue(int(fraction * 100))
            self.table.setItem(r, 5, QTableWidgetItem(message))

    def set_results(self, results) -> None:
        for res in results:
            r = self.rows.get(res.device)
            if r is None:
                continue
            item = QTableWidgetItem(icon("ok" if res.ok else "error"), res.message)
            item.setToolTip(res.detail or res.message)
            self.table.setItem(r, 5, item)
            self.table.cellWidget(r, 4).setValue(100)
        self.table.resizeColumnToContents(5)



