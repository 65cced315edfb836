"""The shelf's quiet "N skipped" button and the list it opens: files in the shelf folders that are not styles.

The shelf lists adapters only. A training run's checkpoint files, other models, damaged or half-copied
files are left off, but never silently: this button says how many, and one click shows each with its
reason. Hidden while nothing is skipped.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout

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
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files not on the shelf")
        self.resize(640, 320)
        intro = QLabel("These .safetensors files in your adapter folders are not listed as styles:")
        intro.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["File", "Why it is skipped"])
        self.tree.setRootIsDecorated(False)
        self.tree.setWordWrap(True)
        self.tree.setColumnWidth(0, 200)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)

    def fill(self, skipped: list) -> None:
        self.tree.clear()
        for item in skipped:
            row = QTreeWidgetItem([Path(item.path).name, item.reason])
            row.setToolTip(0, item.path)
            row.setToolTip(1, item.reason)
            self.tree.addTopLevelItem(row)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.tree.topLevelItem(i).text(0), self.tree.topLevelItem(i).text(1))
                for i in range(self.tree.topLevelItemCount())]  # fmt: skip
