"""Small dialogs: edit an adapter's title/trigger/thumbnail, and bake the stack into one adapter."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
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
