"""Widgets bound to the fields of a settings record by name: a change of any of them is one `changed` signal, and
showing a record sets every widget with its signals blocked, so a restore never echoes back as an edit."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import QAbstractButton, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget


@dataclass(frozen=True)
class Field:
    """How to read, write and watch one value held by one or more widgets."""
    widgets: tuple[QWidget, ...]
    get: Callable[[], Any]
    set: Callable[[Any], None]
    signals: tuple[Any, ...]


def text(edit: QLineEdit) -> Field:
    """A line edit holding an optional string (blank is None)."""
    return Field((edit,), lambda: edit.text().strip() or None, lambda v: edit.setText("" if v is None else str(v)),
                 (edit.textChanged,))


def number(spin: QSpinBox | QDoubleSpinBox, *, zero_is_none: bool = False) -> Field:
    """A spin box; with zero_is_none its special value (0, shown as "off") stands for None."""
    def get():
        value = spin.value()
        return None if zero_is_none and not value else value
    cast = int if isinstance(spin, QSpinBox) else float
    return Field((spin,), get, lambda v: spin.setValue(cast(v or 0)), (spin.valueChanged,))


def checked(box: QAbstractButton) -> Field:
    return Field((box,), box.isChecked, lambda v: box.setChecked(bool(v)), (box.toggled,))


def choice(combo: QComboBox, kind: Callable[[str], Any] = str) -> Field:
    """A combo box of texts, read as kind (an enum, say) and shown by its text."""
    return Field((combo,), lambda: kind(combo.currentText()), lambda v: combo.setCurrentText(f"{v}"),
                 (combo.currentTextChanged,))


def item_data(combo: QComboBox) -> Field:
    """A combo box whose items carry data (None for the first, "none" item); an unknown value selects it."""
    return Field((combo,), combo.currentData, lambda v: combo.setCurrentIndex(max(0, combo.findData(v))),
                 (combo.currentIndexChanged,))


def ticked(boxes: dict[str, QAbstractButton], kind: Callable[[str], Any] = str) -> Field:
    """A row of check boxes keyed by value, read as the tuple of the ticked ones."""
    def put(values):
        on = {f"{v}" for v in values}
        for key, box in boxes.items():
            box.setChecked(key in on)
    return Field(tuple(boxes.values()), lambda: tuple(kind(k) for k, b in boxes.items() if b.isChecked()), put,
                 tuple(b.toggled for b in boxes.values()))


class Binding(QObject):
    """Named fields; `values()` reads them all, `show(values)` writes the given ones without a `changed`."""
    changed = Signal()

    def __init__(self, fields: dict[str, Field], parent: QObject | None = None):
        super().__init__(parent)
        self.fields = fields
        for f in fields.values():
            for signal in f.signals:
                signal.connect(self._on_widget_changed)

    def values(self) -> dict[str, Any]:
        return {name: f.get() for name, f in self.fields.items()}

    def show(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            f = self.fields[name]
            blockers = [QSignalBlocker(w) for w in f.widgets]
            try:
                f.set(value)
            finally:
                for b in blockers:
                    b.unblock()

    def _on_widget_changed(self, *args) -> None:
        self.changed.emit()
