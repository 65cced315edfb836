"""The Compare window: axes as text (A1111's X/Y/Z syntax), cells appearing as they are rendered, and what to do
with the one you like: use its settings (stack and strengths onto the shelf), enlarge it, save it.

A grid PNG dropped here (or on the Generate tab) brings the whole comparison back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui.compare_vm import CompareState, CompareViewModel
from app.gui.gallery import ImageViewer

CELL_PX = 160
SYNTAX = (
    "KIND[:STYLE]=VALUES — strength:stripes=0,0.5,1 · strength:stripes=0-1 (+0.25) · seed=1-4 · cfg=3,7,11 · "
    "steps=10-30 (+10) · sampler=Euler,DPM++ 2M · style=stripes,pastel,none · style:ink=stripes · "
    "prompt_sr=cat,dog · checkpoint:my-style=all,base"
)


class CompareDialog(QDialog):
    def __init__(self, vm: CompareViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Compare")
        self.setAcceptDrops(True)
        self.axis_edits: dict[str, QLineEdit] = {}
        form = QFormLayout()
        for letter, label, example in (("X", "Columns (X)", "strength:stripes=0,0.25,0.5,0.75,1"),
                                       ("Y", "Rows (Y)", "seed=1,2,3  (optional)"),
                                       ("Z", "Blocks (Z)", "style=stripes,pastel  (optional)")):  # fmt: skip
            edit = QLineEdit(vm.axes[letter])
            edit.setPlaceholderText(example)
            edit.setToolTip(SYNTAX)
            edit.returnPressed.connect(self.run)
            self.axis_edits[letter] = edit
            form.addRow(label, edit)
        hint = QLabel(SYNTAX)
        hint.setWordWrap(True)
        hint.setObjectName("Muted")
        self.run_button = QPushButton("Compare")
        self.run_button.setObjectName("Primary")
        self.run_button.setToolTip("Render every cell with the prompt, settings and shelf of the Generate tab")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(vm.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("cell %v / %m")
        self.block = QComboBox()  # which Z block the table shows
        self.block.currentIndexChanged.connect(lambda _i: self._fill_table())
        self.block.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(self.progress, 1)
        top.addWidget(self.block)

        self.table = QTableWidget()
        self.table.setIconSize(QSize(CELL_PX, CELL_PX))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.table.cellDoubleClicked.connect(lambda r, c: self.enlarge(c, r))
        self.table.itemSelectionChanged.connect(self._refresh_buttons)
        self.use_button = QPushButton("Use these settings")
        self.use_button.setToolTip("Put this cell's prompt, settings, styles and strengths on the Generate tab")
        self.use_button.clicked.connect(lambda: self._on_selected(self.vm.use_settings))
        self.enlarge_button = QPushButton("Enlarge")
        self.enlarge_button.clicked.connect(lambda: self._on_selected(self.enlarge))
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(lambda: self._on_selected(self.save))
        self.keep_button = QPushButton("Keep this one")
        self.keep_button.setToolTip("Make this training checkpoint the style's adapter on the shelf (the others stay "
                                    "on disk)")  # fmt: skip
        self.keep_button.clicked.connect(lambda: self._on_selected(self.vm.keep))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.figures = QLabel("")  # held-out loss per checkpoint, when the columns are a run's checkpoints
        self.figures.setWordWrap(True)
        self.figures.setToolTip("Denoising loss on the run's held-out images (lower = closer to the style); "
                                "the same measure the run reported at its end")  # fmt: skip
        actions = QHBoxLayout()
        for button in (self.use_button, self.enlarge_button, self.save_button, self.keep_button):
            actions.addWidget(button)
        actions.addWidget(self.status, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.figures)
        layout.addLayout(actions)
        self.resize(900, 700)

        vm.planned.connect(self._planned)
        vm.cellReady.connect(self._cell_ready)
        vm.progressChanged.connect(self._progress)
        vm.stateChanged.connect(lambda _s: self._refresh_buttons())
        vm.message.connect(self.status.setText)
        vm.figuresReady.connect(lambda: self.figures.setText(vm.figures_text()))
        vm.stateChanged.connect(lambda _s: self.figures.setText(vm.figures_text()))
        vm.errorRaised.connect(lambda message, _details: self.status.setText(message))
        if vm.shape[0]:
            self._planned()
        self._refresh_buttons()

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        self.vm.start(*(self.axis_edits[k].text() for k in ("X", "Y", "Z")))

    def _refresh_buttons(self) -> None:
        running = self.vm.state == CompareState.RUNNING
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        cell = self.selected_cell()
        for button in (self.use_button, self.enlarge_button, self.save_button):
            button.setEnabled(cell is not None)
        self.keep_button.setVisible(facade.axis_kind_and_target(self.vm.axes["X"])[0] == "checkpoint")
        self.keep_button.setEnabled(cell is not None and not running and self.vm.checkpoint_step(cell[0]) is not None)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(total)
        self.progress.setValue(done)

    def _planned(self) -> None:
        for letter, edit in self.axis_edits.items():
            if edit.text() != self.vm.axes[letter]:
                edit.setText(self.vm.axes[letter])
        columns, rows, blocks = self.vm.shape
        self.block.blockSignals(True)
        self.block.clear()
        self.block.addItems(self.vm.labels["Z"] or [""])
        self.block.setVisible(blocks > 1)
        self.block.blockSignals(False)
        self.progress.setMaximum(columns * rows * blocks)
        self.progress.setValue(len(self.vm.cells))
        self.table.clear()
        self.table.setColumnCount(columns)
        self.table.setRowCount(rows)
        self.table.setHorizontalHeaderLabels(self.vm.labels["X"] or [""])
        self.table.setVerticalHeaderLabels(self.vm.labels["Y"] or [""])
        for c in range(columns):
            self.table.setColumnWidth(c, CELL_PX + 8)
        for r in range(rows):
            self.table.setRowHeight(r, CELL_PX + 8)
        self._fill_table()
        self._refresh_buttons()

    def _fill_table(self) -> None:
        z = max(0, self.block.currentIndex())
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                path = self.vm.cells.get((c, r, z))
                self.table.setItem(r, c, self._item(path))

    def _cell_ready(self, x: int, y: int, z: int, path: str) -> None:
        if z == max(0, self.block.currentIndex()):
            self.table.setItem(y, x, self._item(path))
        self._refresh_buttons()

    @staticmethod
    def _item(path: str | None) -> QTableWidgetItem:
        item = QTableWidgetItem()
        if path:
            pix = QPixmap(path)
            if not pix.isNull() and pix.width() < CELL_PX:  # small models: crisp pixels, not a blur
                pix = pix.scaled(CELL_PX, CELL_PX, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.FastTransformation)  # fmt: skip
            item.setIcon(QIcon(pix))
            item.setToolTip(Path(path).name)
            item.setData(Qt.ItemDataRole.UserRole, path)
        return item

    # ------------------------------------------------------------------ a chosen cell
    def selected_cell(self) -> tuple[int, int, int] | None:
        items = self.table.selectedItems()
        if not items or not items[0].data(Qt.ItemDataRole.UserRole):
            return None
        return items[0].column(), items[0].row(), max(0, self.block.currentIndex())

    def _on_selected(self, action) -> None:
        cell = self.selected_cell()
        if cell is not None:
            action(*cell)

    def _menu(self, pos) -> None:
        item = self.table.itemAt(pos)
        if item is None or not item.data(Qt.ItemDataRole.UserRole):
            return
        cell = (item.column(), item.row(), max(0, self.block.currentIndex()))
        menu = QMenu(self)
        menu.addAction("Use these settings", lambda: self.vm.use_settings(*cell))
        menu.addAction("Enlarge", lambda: self.enlarge(*cell))
        menu.addAction("Save as…", lambda: self.save(*cell))
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def enlarge(self, x: int, y: int, z: int | None = None) -> None:
        z = max(0, self.block.currentIndex()) if z is None else z
        path = self.vm.cells.get((x, y, z))
        if path:
            labels = [self.vm.labels[k][i] for k, i in (("X", x), ("Y", y), ("Z", z)) if self.vm.labels[k]]
            viewer = ImageViewer(path, " · ".join(labels), self)
            viewer.show()
            self.viewer = viewer  # kept for tests and so it is not collected while shown

    def save(self, x: int, y: int, z: int) -> None:
        path = self.vm.cells.get((x, y, z))
        if not path:
            return
        dest, _ = QFileDialog.getSaveFileName(self, "Save image", Path(path).name, "PNG images (*.png)")
        if dest:
            shutil.copyfile(path, dest)  # the file itself: its parameters chunk stays

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        pngs = [f for f in files if f.lower().endswith(".png")]
        if pngs and not self.vm.restore(pngs[0]):
            self.status.setText(f"{Path(pngs[0]).name} is not a StyleShelf comparison grid.")
        event.acceptProposedAction()


def open_compare(parent: QWidget, generate_vm, grid_png: str = "") -> bool:
    """Show the (one) Compare window of ``parent`` (the Generate tab), restoring ``grid_png`` when given.

    Returns False, showing nothing, when ``grid_png`` is not a StyleShelf grid (the caller treats it as a picture).
    """
    vm = getattr(parent, "compare_vm", None)
    if vm is None:
        vm = parent.compare_vm = CompareViewModel(generate_vm, parent)
        vm.adapterKept.connect(lambda _path: parent.shelf_vm.refresh())
    dialog = getattr(parent, "compare_dialog", None)
    if dialog is None:
        dialog = parent.compare_dialog = CompareDialog(vm, parent)  # before restoring: it shows what restore says
    if grid_png and not vm.restore(grid_png):
        return False
    dialog.show()
    dialog.raise_()
    return True


def open_checkpoint_comparison(tab: QWidget, adapter: str, captions: list[str], trigger: str = "") -> CompareDialog:
    """After a training run: its checkpoints (the base first) × a few of the dataset's captions, started at once."""
    open_compare(tab, tab.vm)
    dialog = tab.compare_dialog
    x, y = facade.checkpoint_axes(adapter, captions, trigger)
    for letter, text in (("X", x), ("Y", y), ("Z", "")):
        dialog.axis_edits[letter].setText(text)
    dialog.run()
    return dialog
