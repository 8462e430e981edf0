"""The PySide6 window: a thin layer over studio.core."""
