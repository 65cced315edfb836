"""Small dialogs: edit an adapter's title/trigger/thumbnail, bake the stack into one adapter, and pick the extra
folders the shelf lists."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade


class EditAdapterDialog(QDialog):
    def __init__(self, title: str, trigger: str, gallery_image: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit style")
        self.title_edit = QLineEdit(title)
        self.trigger_edit = QLineEdit(trigger)
        self.trigger_edit.setToolTip("Word(s) that call up the style; added to prompts when the style is on")
        self.thumb_check = QCheckBox("Use the selected gallery image as thumbnail")
        self.thumb_check.setEnabled(bool(gallery_image))
        self._gallery_image = gallery_image
        form = QFormLayout(self)
        form.addRow("Title", self.title_edit)
        form.addRow("Trigger", self.trigger_edit)
        form.addRow("", self.thumb_check)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def title(self) -> str:
        return self.title_edit.text().strip()

    def trigger(self) -> str:
        return self.trigger_edit.text().strip()

    def thumbnail(self) -> str:
        return self._gallery_image if self.thumb_check.isChecked() else ""


class BakeDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Bake stack into one adapter")
        self.path_edit = QLineEdit(str(facade.adapters_dir() / "house-style.safetensors"))
        self.path_edit.setToolTip("Where the baked adapter is written; in your shelf folder it appears on the shelf")
        # Wide enough for the whole path: a clipped box hid the file name, the part that matters.
        text_width = self.path_edit.fontMetrics().horizontalAdvance(self.path_edit.text())
        self.path_edit.setMinimumWidth(min(text_width + 24, 720))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(browse)
        self.rank_box = QSpinBox()
        self.rank_box.setRange(0, 256)
        self.rank_box.setSpecialValueText("keep all (exact)")
        self.rank_box.setToolTip("0 = concatenate the adapters exactly; a number = compress to that rank (SVD)")
        form = QFormLayout(self)
        form.addRow("Save as", row)
        form.addRow("Rank", self.rank_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Bake to", self.path_edit.text(), "Adapters (*.safetensors)")
        if path:
            self.path_edit.setText(path)

    def out_path(self) -> str:
        return self.path_edit.text().strip()

    def rank(self) -> int | None:
        return self.rank_box.value() or None


class ShortcutsDialog(QDialog):
    """F1: the keyboard shortcuts in two aligned columns (a table, not spaces in a proportional font)."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setShowGrid(False)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for r, (keys, action) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(action))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        width = self.table.horizontalHeader().length() + 80
        height = self.table.verticalHeader().length() + self.table.horizontalHeader().height() + 90
        self.resize(max(width, 360), min(height, 600))

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]


class AdapterFoldersDialog(QDialog):
    """Edits a copy of the folder list; the shelf's view model stores it when the dialog is accepted."""

    def __init__(self, folders: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Adapter folders")
        self.list = QListWidget()
        self.list.addItems(folders)
        add, remove = QPushButton("Add folder…"), QPushButton("Remove")
        add.clicked.connect(self._add)
        remove.clicked.connect(lambda: [self.list.takeItem(self.list.row(i)) for i in self.list.selectedItems()])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Besides your own styles and the bundled examples, the shelf lists the adapters in "
                "these folders\n(a team share, or another tool's LoRA folder such as ComfyUI's "
                "models/loras). Files there are never moved or deleted."
            )
        )
        layout.addWidget(self.list)
        layout.addLayout(row)
        layout.addWidget(buttons)

    def _add(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add an adapter folder")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        if folder not in self.folders():
            self.list.addItem(folder)

    def folders(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]
