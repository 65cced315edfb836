"""The shelf panel: search, a column of adapter cards (drag to reorder), drop files to import.

Cards mirror ShelfModel rows; the panel rebuilds or updates them when the model changes and routes
card actions back to the view model. Right-click a card for edit / thumbnail / reveal / export / remove.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.file_dialogs import ask_save_path
from app.gui.shelf_card import ROW_MIME, ShelfCard
from app.gui.shelf_model import (
    HIGH_TOTAL_STRENGTH,
    CardRole,
    EnabledRole,
    MismatchRole,
    TextWeightRole,
    WeightRole,
)
from app.gui.shelf_vm import ShelfViewModel
from app.gui.skipped_files import SkippedFilesButton


class ShelfPanel(QWidget):
    editRequested = Signal(str)  # adapter path: the owner opens the metadata dialog
    thumbnailFromGalleryRequested = Signal(str)
    filesDropped = Signal(list)  # non-adapter files (PNGs …) for the owner to handle

    def __init__(self, vm: ShelfViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.model = vm.model
        self.setAcceptDrops(True)
        self.cards: dict[str, ShelfCard] = {}

        title = QLabel("Shelf")
        title.setObjectName("Heading")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter styles…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_filter)
        import_button = QToolButton()
        import_button.setText("Import…")
        import_button.setToolTip("Add .safetensors adapters to the shelf (or drop them here)")
        import_button.clicked.connect(self._choose_import)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        self.skipped_button = SkippedFilesButton(vm)  # "N skipped": files in the folders that are not styles
        head.addWidget(self.skipped_button)
        head.addWidget(import_button)

        # The stack's summed strength, and a quiet hint when it is high.
        self.total_label = QLabel()
        self.total_label.setObjectName("Muted")
        self.total_label.setWordWrap(True)
        # Room for the hint's second line from the start, so the cards do not jump down under the pointer.
        self.total_label.setMinimumHeight(2 * self.total_label.fontMetrics().lineSpacing() + 2)
        self.total_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.total_label.setToolTip(
            "The sum of the enabled styles' strengths. Stacked styles add up: with a sum well above 1 they tend "
            "to wipe out the subject. Lower the strengths so they sum to about 1, then adjust to taste."
        )

        self.list_holder = QWidget()
        self.list_layout = QVBoxLayout(self.list_holder)
        self.list_layout.setContentsMargins(0, 0, 0, 0)
        self.list_layout.setSpacing(6)
        self.empty_label = QLabel("No styles yet.\nTrain one, or drop .safetensors files here.")
        self.empty_label.setObjectName("Muted")
        self.list_layout.addWidget(self.empty_label)
        self.list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # cards narrow with the panel
        scroll.setWidget(self.list_holder)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.search)
        layout.addWidget(self.total_label)
        layout.addWidget(scroll, 1)

        self.model.modelReset.connect(self.rebuild)
        self.model.rowsInserted.connect(lambda *_: self.rebuild())
        self.model.rowsRemoved.connect(lambda *_: self.rebuild())
        self.model.rowsMoved.connect(lambda *_: self.rebuild())
        self.model.dataChanged.connect(lambda *_: self.update_cards())
        self.model.stackChanged.connect(self.update_total)
        self.rebuild()
        self.update_total()

    # ------------------------------------------------------------------ model → cards
    def rebuild(self) -> None:
        wanted = [self.model.item(r).card.path for r in range(self.model.rowCount())]
        for path in list(self.cards):
            if path not in wanted:
                card = self.cards.pop(path)
                self.list_layout.removeWidget(card)
                card.deleteLater()
        for position, path in enumerate(wanted):
            card = self.cards.get(path)
            if card is None:
                card = ShelfCard(self.model.item(position).card)
                card.toggled.connect(self._toggled)
                card.weightChanged.connect(self._weighted)
                card.textWeightChanged.connect(self._text_weighted)
                card.contextMenuRequested.connect(self._menu)
                self.cards[path] = card
            self.list_layout.removeWidget(card)
            self.list_layout.insertWidget(position, card)
        self.empty_label.setVisible(not wanted)
        self.update_cards()
        self._apply_filter(self.search.text())

    def update_cards(self) -> None:
        for row in range(self.model.rowCount()):
            idx = self.model.index(row)
            card = self.cards.get(self.model.item(row).card.path)
            if card is not None:
                card.set_card(idx.data(CardRole))
                card.set_state(
                    idx.data(EnabledRole), idx.data(WeightRole), idx.data(MismatchRole), idx.data(TextWeightRole)
                )

    def update_total(self) -> None:
        on = sum(1 for it in self.model.items() if it.enabled)
        total = self.model.total_strength()
        if not on:
            text = "No style on: tick a card to use it in the next image."
        else:
            text = f"{on} on · total strength {total:.2f}"
            if total > HIGH_TOTAL_STRENGTH:
                text += " · high: the styles may wash out the subject; try a total near 1"
        self.total_label.setText(text)
        self.total_label.setProperty("warn", "true" if on and total > HIGH_TOTAL_STRENGTH else "false")
        self.total_label.style().unpolish(self.total_label)
        self.total_label.style().polish(self.total_label)

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for row in range(self.model.rowCount()):
            c = self.model.item(row).card
            card = self.cards.get(c.path)
            if card is not None:
                hay = f"{c.title} {c.trigger} {Path(c.path).stem} {c.family}".lower()
                card.setVisible(not needle or needle in hay)

    # ------------------------------------------------------------------ cards → model
    def _toggled(self, path: str, on: bool) -> None:
        row = self.model.row_of(path)
        if row is not None:
            self.model.set_enabled(row, on)

    def _text_weighted(self, path: str, weight: float) -> None:
        row = self.model.row_of(path)
        if row is not None:
            self.model.set_text_encoder_weight(row, weight)

    def _weighted(self, path: str, weight: float) -> None:
        row = self.model.row_of(path)
        if row is not None:
            self.model.set_weight(row, weight)

    def _menu(self, path: str, where: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction("Edit title and trigger…", lambda: self.editRequested.emit(path))
        menu.addAction("Use selected gallery image as thumbnail", lambda: self.thumbnailFromGalleryRequested.emit(path))
        menu.addSeparator()
        menu.addAction("Reveal file", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent))))
        menu.addAction("Export…", lambda: self._export(path))
        row = self.model.row_of(path)
        if row is not None:
            menu.addAction("Move up", lambda: self.model.move(row, max(row - 1, 0)))
            menu.addAction("Move down", lambda: self.model.move(row, min(row + 1, self.model.rowCount() - 1)))
        menu.addSeparator()
        menu.addAction("Remove from shelf…", lambda: self._remove(path))
        menu.popup(where)

    def _remove(self, path: str) -> None:
        answer = QMessageBox.question(
            self,
            "Remove style",
            f"Delete {Path(path).name} from your shelf folder? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.vm.remove(path)

    def _export(self, path: str) -> None:
        dest = ask_save_path(self, "Export adapter", Path(path).name, "Adapters (*.safetensors)")
        if dest:
            self.vm.export(path, dest)

    def _choose_import(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import adapters", "", "Adapters (*.safetensors)")
        if files:
            self.vm.import_files(files)

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(ROW_MIME) or event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        if mime.hasFormat(ROW_MIME):
            path = bytes(mime.data(ROW_MIME).data()).decode("utf-8")
            self.drop_row(path, self.list_holder.mapFrom(self, event.position().toPoint()).y())
        else:
            self.drop_files([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        event.acceptProposedAction()

    def drop_row(self, path: str, y: int) -> None:
        """Move a dragged card to the slot under vertical position ``y`` (list coordinates)."""
        src = self.model.row_of(path)
        if src is None:
            return
        dst = self.model.rowCount() - 1
        for row in range(self.model.rowCount()):
            card = self.cards.get(self.model.item(row).card.path)
            if card is not None and card.isVisible() and y < card.geometry().center().y():
                dst = row if row <= src else row - 1
                break
        self.model.move(src, dst)

    def drop_files(self, files: list[str]) -> None:
        # Pickled formats go to the engine too, so the user hears why they are refused.
        adapters = [f for f in files if Path(f).suffix.lower() in (".safetensors", ".ckpt", ".pt", ".pth", ".bin")]
        others = [f for f in files if f not in adapters]
        if adapters:
            self.vm.import_files(adapters)
        if others:
            self.filesDropped.emit(others)
