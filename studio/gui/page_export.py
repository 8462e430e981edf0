"""Export: name, version, labels and signing key; the bundle is verified right after it is written."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from studio.core.app.project import ExportSettings

from . import binding as bind
from .binding import Binding
from .resources import icon, white_icon
from .widgets import Banner, Card, help_label, page_layout


class ExportPage(QWidget):
    """Emits the ExportSettings its fields make; renders one when restored."""
    export_requested = Signal()
    new_key_requested = Signal()
    settings_changed = Signal(object)  # ExportSettings

    def __init__(self, parent=None):
        super().__init__(parent)
        box = page_layout(self, "Export a bundle", "One zip with the model, a manifest that pins every file's"
                                                   " sha256, an optional signature and a runner the device uses to"
                                                   " check the model.")
        self.source = QLabel("Nothing chosen yet: pick a candidate in Preview, or export the loaded model.")
        self.source.setWordWrap(True)
        src = Card("What goes in")
        src.body.addWidget(self.source)
        box.addWidget(src)
        form_card = Card("Bundle")
        form = QFormLayout()
        self.name = QLineEdit()
        self.version = QLineEdit("1.0.0")
        self.labels = QLineEdit()
        self.key = QLineEdit()
        self.out = QLineEdit()
        form.addRow("Name", self.name)
        form.addRow("", help_label("Letters, digits, '.', '_' and '-'; it names the release on devices."))
        form.addRow("Version", self.version)
        form.addRow("Labels", self._with_button(self.labels, "Choose…", self._choose_labels))
        form.addRow("", help_label("Optional class names, one per line; the device can show them."))
        keyrow = self._with_button(self.key, "Choose…", self._choose_key)
        new = QPushButton(icon("key"), "New key…")
        new.clicked.connect(self.new_key_requested)
        keyrow.layout().addWidget(new)
        form.addRow("Signing key", keyrow)
        form.addRow("", help_label("Optional Ed25519 key: devices and technicians can check who made the bundle."))
        form.addRow("Save as", self._with_button(self.out, "Choose…", self._choose_out))
        form_card.body.addLayout(form)
        box.addWidget(form_card)
        row = QHBoxLayout()
        row.addStretch()
        self.export = QPushButton(white_icon("export"), "Export and verify")
        self.export.setObjectName("primary")
        self.export.setToolTip("Write the bundle, then verify it (Ctrl+E)")
        self.export.clicked.connect(self.export_requested)
        row.addWidget(self.export)
        box.addLayout(row)
        self.banner = Banner()
        box.addWidget(self.banner)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        box.addWidget(self.details)
        box.addStretch()
        self.binding = Binding({"name": bind.text(self.name), "version": bind.text(self.version),
                                "labels": bind.text(self.labels), "sign_key": bind.text(self.key),
                                "out": bind.text(self.out)}, self)
        self.binding.changed.connect(lambda: self.settings_changed.emit(self.settings()))

    @staticmethod
    def _with_button(edit: QLineEdit, text: str, slot) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        b = QPushButton(text)
        b.clicked.connect(slot)
        row.addWidget(b)
        return w

    def _choose_labels(self):
        path, _ = QFileDialog.getOpenFileName(self, "Labels", "", "Text (*.txt);;All files (*)")
        if path:
            self.labels.setText(path)

    def _choose_key(self):
        path, _ = QFileDialog.getOpenFileName(self, "Signing key", "", "All files (*)")
        if path:
            self.key.setText(path)

    def _choose_out(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save bundle", self.out.text(), "Bundles (*.bundle.zip)")
        if path:
            self.out.setText(path if path.endswith(".zip") else path + ".bundle.zip")

    def set_source(self, text: str, default_name: str, default_out: Path) -> None:
        self.source.setText(text)
        if not self.name.text():
            self.name.setText(default_name)
        if not self.out.text():
            self.out.setText(str(default_out))

    def settings(self) -> ExportSettings:
        v = self.binding.values()
        return ExportSettings(name=v["name"] or "", version=v["version"] or "", labels=v["labels"],
                              sign_key=v["sign_key"], out=v["out"] or "")

    def render(self, settings: ExportSettings) -> None:
        """Show these settings; no settings_changed is emitted for them."""
        self.binding.show(dataclasses.asdict(settings))

    def show_result(self, ok: bool, text: str, details: str = "") -> None:
        self.banner.show_message("ok" if ok else "error", text)
        self.details.setText(details)
