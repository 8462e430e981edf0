"""Icons from resources/ (source tree), share/studio (installed) or the PyInstaller bundle."""
from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer


@cache
def icons_dir() -> Path:
    candidates = [Path(__file__).resolve().parents[2] / "resources" / "icons",
                  Path(sys.prefix) / "share" / "studio" / "icons"]
    if hasattr(sys, "_MEIPASS"):
        candidates.insert(0, Path(sys._MEIPASS) / "resources" / "icons")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _render(svg: str, icon_: QIcon, mode) -> None:
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    for size in (16, 24, 32, 48):
        pix = QPixmap(size, size)
        pix.fill(Qt.transparent)
        painter = QPainter(pix)
        renderer.render(painter)
        painter.end()
        icon_.addPixmap(pix, mode)


def _svg(name: str) -> str | None:
    try:
        return (icons_dir() / f"{name}.svg").read_text(encoding="utf-8")
    except OSError:
        return None


@cache
def icon(name: str) -> QIcon:
    """The icon, with a white variant for selected items (the accent-coloured strokes vanish on the accent)."""
    result = QIcon(str(icons_dir() / f"{name}.svg"))
    svg = _svg(name)
    if svg is not None:
        _render(svg.replace("#4a7fd4", "#ffffff"), result, QIcon.Selected)
    return result


@cache
def white_icon(name: str) -> QIcon:
    """All strokes white: for icons on accent-coloured (primary) buttons."""
    result = QIcon()
    svg = _svg(name)
    if svg is not None:
        svg = re.sub(r'(stroke|fill)="#[0-9a-fA-F]{6}"', r'\1="#ffffff"', svg)
        for mode in (QIcon.Normal, QIcon.Active, QIcon.Disabled):
            _render(svg, result, mode)
    return result
