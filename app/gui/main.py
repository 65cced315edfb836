"""Entry point of the desktop app (a placeholder two-tab window until the GUI issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QTabWidget

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    window = QMainWindow()
    window.setWindowTitle("StyleShelf")
    tabs = QTabWidget()
    tabs.addTab(QLabel("Train"), "Train")
    tabs.addTab(QLabel("Generate"), "Generate")
    window.setCentralWidget(tabs)
    window.resize(1100, 720)
    window.show()
    return app.exec()
