"""Entry point of the desktop app: ``python -m app`` / ``make run``.

Shows the window at once; the engine (torch, diffusers) loads on a worker thread afterwards and the
status line says when the base model is ready. Importing this module loads no engine code.
"""

from __future__ import annotations

import os
import sys


def create_app(argv: list[str] | None = None):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.gui import settings as prefs
    from app.gui.theme import apply_theme

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here ever downloads
    app = QApplication.instance()
    if app is None:
        # Fractional scaling (150 %) stays sharp instead of rounding to 1× or 2×.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName(prefs.APPLICATION)
    app.setOrganizationName(prefs.ORGANIZATION)
    mode = prefs.get_str("theme", "system")
    apply_theme(app, mode)
    hints = QGuiApplication.styleHints()
    hints.colorSchemeChanged.connect(lambda _s: apply_theme(app, prefs.get_str("theme", "system")))
    from app.gui import gc_guard

    gc_guard.install()  # cycles die on the UI thread, never in a worker (see gc_guard)
    return app


def main(argv: list[str] | None = None) -> int:
    from app.gui.app_window import MainWindow
    from app.gui.errors import install_excepthook

    app = create_app(argv)
    window = MainWindow()
    install_excepthook(window)
    window.show()
    return app.exec()
