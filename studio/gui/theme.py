"""Light and dark themes that follow the system (Qt's colour scheme hint; STUDIO_THEME=light|dark overrides)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#4a7fd4"
OK, WARN, BAD = "#2e9d57", "#d9982b", "#d24b4b"


def is_dark() -> bool:
    choice = os.environ.get("STUDIO_THEME", "").lower()
    if choice in ("dark", "light"):
        return choice == "dark"
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply(app: QApplication) -> bool:
    """Fusion style with a palette for the current scheme; returns True when dark."""
    app.setStyle("Fusion")
    font = QFont(app.font())
    font.setPointSizeF(max(font.pointSizeF(), 10.0))
    app.setFont(font)
    dark = is_dark()
    p = QPalette()
    if dark:
        colors = {QPalette.Window: "#23262b", QPalette.WindowText: "#e6e6e6", QPalette.Base: "#1b1d21",
                  QPalette.AlternateBase: "#2a2d33", QPalette.Text: "#e6e6e6", QPalette.Button: "#2d3036",
                  QPalette.ButtonText: "#e6e6e6", QPalette.ToolTipBase: "#2d3036", QPalette.ToolTipText: "#e6e6e6",
                  QPalette.PlaceholderText: "#8a8f98", QPalette.Highlight: ACCENT, QPalette.HighlightedText: "#ffffff",
                  QPalette.Link: "#7fa8ec", QPalette.Mid: "#3a3e45", QPalette.Dark: "#15171a"}
    else:
        colors = {QPalette.Window: "#f4f5f7", QPalette.WindowText: "#1f2328", QPalette.Base: "#ffffff",
                  QPalette.AlternateBase: "#f0f2f5", QPalette.Text: "#1f2328", QPalette.Button: "#ffffff",
                  QPalette.ButtonText: "#1f2328", QPalette.ToolTipBase: "#ffffff", QPalette.ToolTipText: "#1f2328",
                  QPalette.PlaceholderText: "#7a808a", QPalette.Highlight: ACCENT, QPalette.HighlightedText: "#ffffff",
                  QPalette.Link: ACCENT, QPalette.Mid: "#d0d4da", QPalette.Dark: "#b6bcc6"}
    for role, value in colors.items():
        p.setColor(role, QColor(value))
    p.setColor(QPalette.Disabled, QPalette.Text, QColor("#7a808a"))
    p.setColor(QPalette.Disabled, QPalette.ButtonText, QColor("#7a808a"))
    app.setPalette(p)
    app.setStyleSheet(stylesheet(dark))
    return dark


def stylesheet(dark: bool) -> str:
    card = "#2a2d33" if dark else "#ffffff"
    border = "#3a3e45" if dark else "#d8dce2"
    muted = "#9aa0a8" if dark else "#5f6670"
    return f"""
    QListWidget#sidebar {{ border: none; outline: 0; background: {'#1b1d21' if dark else '#e9ecf0'};
                          padding: 12px 0; font-size: 11pt; }}
    QListWidget#sidebar::item {{ padding: 9px 12px; margin: 2px 10px; border-radius: 6px; border: none; }}
    QListWidget#sidebar::item:hover {{ background: {'#2a2d33' if dark else '#dde1e7'}; }}
    QListWidget#sidebar::item:selected {{ background: {ACCENT}; color: white; }}
    QFrame#card {{ background: {card}; border: 1px solid {border}; border-radius: 8px; }}
    QLabel#title {{ font-size: 18pt; font-weight: 600; }}
    QLabel#subtitle {{ color: {muted}; }}
    QLabel#help {{ color: {muted}; font-size: 9pt; }}
    QLabel#metric {{ font-size: 14pt; font-weight: 600; }}
    QLabel#metricLabel {{ color: {muted}; font-size: 9pt; }}
    QLabel#banner {{ border-radius: 6px; padding: 10px 14px; font-weight: 600; }}
    QPushButton {{ padding: 6px 14px; border-radius: 6px; border: 1px solid {border}; }}
    QPushButton#primary {{ background: {ACCENT}; color: white; border: none; font-weight: 600; }}
    QPushButton#primary:disabled {{ background: {'#3a4a66' if dark else '#a9bfe6'}; }}
    QPushButton#big {{ font-size: 15pt; padding: 14px 28px; }}
    QTableView {{ gridline-color: {border}; }}
    QProgressBar {{ border: 1px solid {border}; border-radius: 5px; text-align: center; min-height: 16px; }}
    QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
    """


def chart_colors(dark: bool) -> dict:
    return {"background": "#1b1d21" if dark else "#ffffff", "foreground": "#d0d4da" if dark else "#30343a",
            "grid": 0.25 if dark else 0.15}
