"""Small shared widgets: cards, metric tiles, banners, help lines, a drop zone, a task bar."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from . import theme
from .resources import icon

if TYPE_CHECKING:  # the flasher uses these widgets and ships without numpy
    import numpy as np


class Card(QFrame):
    def __init__(self, title: str | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(16, 12, 16, 14)
        self.body.setSpacing(8)
        self.title = None
        if title:
            self.title = QLabel(title)
            self.title.setStyleSheet("font-weight: 600;")
            self.body.addWidget(self.title)


class Metric(QWidget):
    def __init__(self, label: str, parent=None):
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        self.value = QLabel("-")
        self.value.setObjectName("metric")
        caption = QLabel(label)
        caption.setObjectName("metricLabel")
        box.addWidget(self.value)
        box.addWidget(caption)

    def set(self, text: str) -> None:
        self.value.setText(text)


def header(title: str, subtitle: str) -> QWidget:
    w = QWidget()
    box = QVBoxLayout(w)
    box.setContentsMargins(0, 0, 0, 8)
    box.setSpacing(2)
    t = QLabel(title)
    t.setObjectName("title")
    s = QLabel(subtitle)
    s.setObjectName("subtitle")
    s.setWordWrap(True)
    box.addWidget(t)
    box.addWidget(s)
    return w


def page_layout(widget: QWidget, title: str, subtitle: str, margins: int = 24, spacing: int = 12) -> QVBoxLayout:
    """A page's column: margins, spacing and the title with its one-line explanation."""
    box = QVBoxLayout(widget)
    box.setContentsMargins(margins, margins - 4, margins, margins - 4)
    box.setSpacing(spacing)
    box.addWidget(header(title, subtitle))
    return box


def help_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("help")
    label.setWordWrap(True)
    return label


class Banner(QLabel):
    """A coloured line of status: ok (green), warning (amber), error (red) or info."""

    COLORS: ClassVar[dict[str, str]] = {"ok": theme.OK, "warning": theme.WARN, "error": theme.BAD, "info": theme.ACCENT}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.hide()

    def show_message(self, kind: str, text: str) -> None:
        c = QColor(self.COLORS[kind])
        self.setStyleSheet(f"background: rgba({c.red()}, {c.green()}, {c.blue()}, 40); border: 1px solid {c.name()};"
                           " color: palette(window-text);")
        self.setText(text)
        self.setProperty("kind", kind)
        self.show()


class DropZone(QFrame):
    """Drop a file here, or click to open one."""

    dropped = Signal(str)
    clicked = Signal()

    def __init__(self, text: str, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setObjectName("card")
        self.setMinimumHeight(90)
        self.setCursor(Qt.PointingHandCursor)
        box = QHBoxLayout(self)
        ic = QLabel()
        ic.setPixmap(icon("load").pixmap(32, 32))
        box.addStretch()
        box.addWidget(ic)
        self.label = QLabel(text)
        box.addWidget(self.label)
        box.addStretch()

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        urls = event.mimeData().urls()
        if urls:
            self.dropped.emit(str(Path(urls[0].toLocalFile())))

    def mousePressEvent(self, event):
        self.clicked.emit()


class TaskBar(QWidget):
    """Progress and Cancel for the running task, in the status bar."""

    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        box = QHBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(False)
        self.cancel = QPushButton(icon("stop"), "Cancel")
        self.cancel.setToolTip("Stop the running task (Esc)")
        self.cancel.clicked.connect(self.cancel_requested)
        self.label.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        for w in (self.label, self.bar, self.cancel):
            box.addWidget(w)
        self.idle()

    def busy(self, name: str) -> None:
        self.label.setText(name)
        self.bar.setValue(0)
        for w in (self.bar, self.cancel):
            w.show()

    def progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.label.setText(message[:90])

    def idle(self, message: str = "") -> None:
        self.label.setText(message)
        self.bar.hide()
        self.cancel.hide()


def thumbnail(x: np.ndarray, size: int = 48) -> QPixmap | None:
    """An image sample (HxW, HxWxC or CxHxW with 1 or 3 channels) scaled to fit `size`; None for other arrays."""
    import numpy as np

    a = np.asarray(x)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 4:
        return None
    a = a.astype(np.float32)
    a = ((a - a.min()) / max(1e-9, float(a.max() - a.min())) * 255).astype(np.uint8)
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_Grayscale8)
    else:
        img = QImage(a.data, a.shape[1], a.shape[0], a.strides[0], QImage.Format_RGB888)
    return QPixmap.fromImage(img.copy()).scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
