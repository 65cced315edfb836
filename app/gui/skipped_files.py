"""The shelf's quiet "N skipped" button and the list it opens: files in the shelf folders that are not styles.

The shelf lists adapters only. A training run's checkpoint files, other models, damaged or half-copied
files are left off, but never silently: this button says how many, and one click shows each with its
reason. Hidden while nothing is skipped.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QToolButton, QVBoxLayout

from app.gui.shelf_vm import ShelfViewModel


class SkippedFilesButton(QToolButton):
    def __init__(self, vm: ShelfViewModel, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("SkippedFiles")
        self.setAutoRaise(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.skipped: list = []
        self.dialog: SkippedFilesDialog | None = None
        vm.skippedChanged.connect(self.set_skipped)
        self.clicked.connect(self.show_list)
        self.set_skipped(vm.skipped)

    def set_skipped(self, skipped: list) -> None:
        self.skipped = list(skipped)
        n = len(self.skipped)
        self.setText(f"{n} skipped")
        self.setToolTip(f"{n} file{'s' if n != 1 else ''} in the shelf folders {'are' if n != 1 else 'is'} "
                        "not a style (checkpoints, other models, damaged files). Click to see why.")  # fmt: skip
        self.setVisible(n > 0)
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.fill(self.skipped)

    def show_list(self) -> None:
        if self.dialog is None:
            self.dialog = SkippedFilesDialog(self.window())
        self.dialog.fill(self.skipped)
        self.dialog.show()
        self.dialog.raise_()


class SkippedFilesDialog(QDialog):
    """Each skipped file with its full reason and folder, wrapped and selectable (reasons are sentences)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files not on the shelf")
        self.resize(640, 360)
        intro = QLabel("These .safetensors files in your adapter folders are not listed as styles:")
        intro.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
        self._rows: list[tuple[str, str]] = []

    def fill(self, skipped: list) -> None:
        self._rows = [(Path(item.path).name, item.reason) for item in skipped]
        self.text.setHtml("".join(
            f"<p><b>{html.escape(Path(item.path).name)}</b><br>{html.escape(item.reason)}<br>"
            f"<small>{html.escape(str(Path(item.path).parent))}</small></p>"
            for item in skipped
        ))  # fmt: skip

    def rows(self) -> list[tuple[str, str]]:
        return list(self._rows)
