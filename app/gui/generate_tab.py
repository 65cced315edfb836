"""The Generate tab: prompt and settings on the left, preview and gallery in the middle, the shelf right.

A pure view over GenerateViewModel (prompt, settings, results) and ShelfViewModel (adapters).
Dropping a PNG anywhere on the tab restores its prompt, settings and stack.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QPoint, QRegularExpression, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QIcon, QImage, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui.file_dialogs import ask_save_path
from app.gui.gallery import GalleryView, ImageRole, ImageViewer
from app.gui.generate_vm import MAX_SEED, GenerateState, GenerateViewModel
from app.gui.image_info import full_text
from app.gui.input_image_panel import attach_input_panel
from app.gui.number_box import fit_to_setting, show_value
from app.gui.preview import ImageDetails, ImagePreview
from app.gui.settings_form import SettingsForm
from app.gui.shelf_panel import ShelfPanel
from app.gui.shelf_vm import ShelfViewModel


class SeedEdit(QLineEdit):
    """Digits only, 0 … 2³²−1, with a spin-box-like ``value``/``setValue``."""

    def __init__(self) -> None:
        super().__init__()
        self.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{0,10}"), self))

    def value(self) -> int:
        return int(self.text() or 0)

    def setValue(self, value: int) -> None:
        text = str(int(value) % (MAX_SEED + 1))
        if text != self.text():  # re-setting the same text would move the cursor of someone typing
            self.setText(text)
            self.textEdited.emit(self.text())


class GenerateTab(QWidget):
    def __init__(self, vm: GenerateViewModel, shelf_vm: ShelfViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm, self.shelf_vm = vm, shelf_vm
        self.setAcceptDrops(True)
        self._updating = False

        # ---- left: prompt and settings
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Describe the picture, e.g. “a yellow star on a green background”")
        self.prompt.setMaximumHeight(90)
        settings = facade.generate_settings()  # ranges, steps and tooltips: GenerateConfig's, defined once
        self.prompt.setToolTip(settings["prompt"].help)
        self.prompt.textChanged.connect(lambda: self._set("prompt", self.prompt.toPlainText()))
        self.recent_button = QToolButton()
        self.recent_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogDetailedView))
        self.recent_button.setToolTip("Recent prompts: pick one to use it again")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.recent_button.setMenu(self.recent_menu)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt, 1)
        prompt_row.addWidget(self.recent_button, 0, Qt.AlignmentFlag.AlignTop)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("What to avoid (optional)")
        self.negative.setToolTip(settings["negative"].help)
        self.negative.setMaximumHeight(56)
        self.negative.textChanged.connect(lambda: self._set("negative", self.negative.toPlainText()))

        # A line edit, not a spin box: seeds go up to 2³²−1 (A1111 PNGs), past a QSpinBox's int range.
        self.seed = SeedEdit()
        self.seed.setToolTip(settings["seed"].help)
        self.seed.textEdited.connect(lambda t: self._set("seed", min(int(t), MAX_SEED)) if t.isdigit() else None)
        dice = QToolButton()
        dice.setIcon(
            QIcon.fromTheme("media-playlist-shuffle", self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        )
        dice.setToolTip("New random seed")
        dice.clicked.connect(vm.roll_seed)
        self.lock = QCheckBox("Lock")
        self.lock.setToolTip(
            "Keep this seed for the next images. Lock it when comparing styles; unlock it to "
            "explore (a new random seed each time)"
        )
        self.lock.toggled.connect(vm.set_seed_locked)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(dice)
        seed_row.addWidget(self.lock)

        self.steps = QSpinBox()
        fit_to_setting(self.steps, settings["steps"])
        self.steps.valueChanged.connect(lambda v: self._set("steps", int(v)))
        self.guidance = QDoubleSpinBox()
        fit_to_setting(self.guidance, settings["guidance"])
        self.guidance.valueChanged.connect(lambda v: self._set("guidance", float(v)))
        self.width_box, self.height_box = QSpinBox(), QSpinBox()
        for box, name in ((self.width_box, "width"), (self.height_box, "height")):
            fit_to_setting(box, settings[name], auto="auto")  # 0 = the base model's native size
            box.setSuffix(" px")
            low = int(settings[name].minimum)
            box.valueChanged.connect(lambda v, n=name, low=low: self._set(n, int(v) if v >= low else None))
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_box)
        self.sampler = QComboBox()
        from app.engine.facade import sampler_names

        self.sampler.addItems(sampler_names())
        self.sampler.setToolTip(settings["sampler"].help)
        self.sampler.currentTextChanged.connect(lambda t: self._set("sampler", t))
        self.batch = QSpinBox()
        fit_to_setting(self.batch, settings["batch_count"])
        self.batch.valueChanged.connect(lambda v: self._set("batch_count", int(v)))
        self.triggers = QCheckBox("Add the styles' trigger words")
        self.triggers.setToolTip(settings["insert_triggers"].help)
        self.triggers.toggled.connect(lambda on: self._set("insert_triggers", bool(on)))

        form = QFormLayout()
        form.addRow("Prompt", prompt_row)
        form.addRow("Negative", self.negative)
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Size", size_row)
        form.addRow("Sampler", self.sampler)
        form.addRow("Images", self.batch)
        form.addRow("", self.triggers)

        # Every other setting (GenerateConfig's fields not placed by hand above, nor marked form=False) is built
        # from the config like the Train form, behind a disclosure: a new field is a widget with no edit here.
        more = [dataclasses.replace(s, advanced=False) for s in vm.more_settings()]
        self.more_form = SettingsForm(more, lambda n: getattr(self.vm.params, n), self._set_more)
        self.more_button = QToolButton()
        self.more_button.setText("More settings")
        self.more_button.setCheckable(True)
        self.more_button.setArrowType(Qt.ArrowType.RightArrow)
        self.more_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more_button.setAutoRaise(True)
        self.more_button.setToolTip("Settings most pictures never need to change")
        self.more_button.toggled.connect(self._toggle_more)
        self.more_button.setVisible(bool(more))
        self.more_form.setVisible(False)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("Primary")
        self.generate_button.setToolTip("Make images with the enabled styles (Ctrl+Return)")
        self.generate_button.clicked.connect(vm.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(vm.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        self.compare_button = QPushButton("Compare…")
        self.compare_button.setToolTip("A grid of strengths, styles, seeds, prompts or checkpoints, side by side")
        self.compare_button.clicked.connect(lambda: self.open_compare())
        compare_row = QHBoxLayout()  # its own row: three buttons side by side clip "Generate" at 1024 px
        compare_row.addWidget(self.compare_button, 1)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addLayout(form)
        left_layout.addWidget(self.more_button)
        left_layout.addWidget(self.more_form)
        left_layout.addLayout(buttons)
        left_layout.addLayout(compare_row)
        left_layout.addWidget(self.progress)
        left_layout.addStretch(1)
        left.setMinimumWidth(270)  # with the shelf and the preview: fits a 1024 px window

        # ---- middle: preview with the picture's details beside it, and the gallery
        self.preview = ImagePreview("Your pictures appear here")
        self.details = ImageDetails(str(facade.gallery_dir()))
        self.details.useSettingsRequested.connect(self._use_shown_settings)
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(attach_input_panel(self, self.preview, vm.inputs), 1)  # image to image, inpainting
        top_layout.addWidget(self.details)
        self.gallery = GalleryView()
        self.gallery.setModel(vm.gallery)
        self.gallery.clicked.connect(lambda idx: self.show_image(idx.row()))
        self.gallery.doubleClicked.connect(lambda idx: self.enlarge(idx.row()))
        self.gallery.activated.connect(lambda idx: self.enlarge(idx.row()))
        self.gallery.customContextMenuRequested.connect(self._gallery_menu)
        middle = QSplitter(Qt.Orientation.Vertical)
        middle.addWidget(top)
        middle.addWidget(self.gallery)
        middle.setStretchFactor(0, 3)
        middle.setStretchFactor(1, 2)

        # ---- right: the shelf, presets, bake
        self.shelf_panel = ShelfPanel(shelf_vm)
        self.shelf_panel.filesDropped.connect(self.open_paths)
        self.shelf_panel.editRequested.connect(self.edit_adapter)
        self.shelf_panel.thumbnailFromGalleryRequested.connect(self.thumbnail_from_gallery)
        self.preset_button = QToolButton()
        self.preset_button.setText("Presets")
        self.preset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.preset_button.setToolTip("Save or load the enabled styles and their weights")
        self.preset_menu = QMenu(self)
        self.preset_menu.aboutToShow.connect(self._fill_preset_menu)
        self.preset_button.setMenu(self.preset_menu)
        bake = QPushButton("Bake stack…")
        bake.setToolTip("Merge the enabled styles, with their weights, into one shareable adapter")
        bake.clicked.connect(self.bake)
        shelf_buttons = QHBoxLayout()
        shelf_buttons.addWidget(self.preset_button)
        shelf_buttons.addStretch(1)
        shelf_buttons.addWidget(bake)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.shelf_panel, 1)
        right_layout.addLayout(shelf_buttons)
        right.setMinimumWidth(270)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(middle)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([290, 560, 340])  # scaled to the window: the side panels stay near their minimum
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        vm.paramsChanged.connect(self.refresh)
        vm.seedChanged.connect(lambda _s: self.refresh())
        vm.stateChanged.connect(lambda _s: self._refresh_buttons())
        vm.progressChanged.connect(self._progress)
        vm.previewReady.connect(self.preview.set_image)
        vm.imageReady.connect(lambda _path: self.show_image(0))  # the newest picture is row 0
        self.refresh()

    # ------------------------------------------------------------------ model ↔ widgets
    def _set(self, name: str, value) -> None:
        if not self._updating:
            self.vm.set_param(name, value)

    def _set_more(self, name: str, value) -> None:
        self._set(name, value)
        self.more_form.refresh(name)  # the model's value, as the model keeps it

    def _toggle_more(self, on: bool) -> None:
        self.more_form.setVisible(on)
        self.more_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def refresh(self) -> None:
        p = self.vm.params
        self._updating = True
        try:
            if self.prompt.toPlainText() != p.prompt:
                self.prompt.setPlainText(p.prompt)
            if self.negative.toPlainText() != p.negative:
                self.negative.setPlainText(p.negative)
            self.seed.setValue(int(p.seed or 0))
            show_value(self.steps, p.steps)
            show_value(self.guidance, p.guidance)
            show_value(self.width_box, p.width or 0)
            show_value(self.height_box, p.height or 0)
            i = self.sampler.findText(p.sampler)
            if i < 0 and p.sampler:
                self.sampler.addItem(p.sampler)
                i = self.sampler.count() - 1
            self.sampler.setCurrentIndex(max(i, 0))
            show_value(self.batch, p.batch_count)
            self.triggers.setChecked(p.insert_triggers)
            self.lock.setChecked(self.vm.seed_locked)
            self.more_form.refresh()
        finally:
            self._updating = False
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        ok, why = self.vm.can_generate()
        self.generate_button.setEnabled(ok)
        self.generate_button.setToolTip(why or "Make images with the enabled styles (Ctrl+Return)")
        self.cancel_button.setEnabled(self.vm.state == GenerateState.GENERATING)

    def _progress(self, step: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)

    def show_image(self, row: int) -> None:
        """Show gallery picture ``row`` in the preview, with what made it beside it."""
        gallery = self.vm.gallery
        if not 0 <= row < gallery.rowCount():
            return
        img = gallery.image(row)
        self.preview.set_image(img.path)
        self.gallery.setCurrentIndex(gallery.index(row))
        # The file's name only: its folder is shown under the details, with "Open folder".
        self.details.show_details(full_text(gallery.params_of(img), img.seed, Path(img.path).name))
        self.details.text.setToolTip(img.path)

    def _use_shown_settings(self) -> None:
        idx = self.gallery.currentIndex()
        if idx.isValid():
            self.use_settings(idx.row())

    # ------------------------------------------------------------------ gallery actions
    def enlarge(self, row: int) -> None:
        img = self.vm.gallery.image(row)
        ImageViewer(img.path, full_text(self.vm.gallery.params_of(img), img.seed), self).show()

    def _gallery_menu(self, pos: QPoint) -> None:
        idx = self.gallery.indexAt(pos)
        if not idx.isValid():
            return
        row = idx.row()
        menu = QMenu(self)
        menu.addAction("Enlarge", lambda: self.enlarge(row))
        menu.addAction("Save as…", lambda: self.save_image(row))
        menu.addAction("Copy image", lambda: self.copy_image(row))
        menu.addAction("Use these settings", lambda: self.use_settings(row))
        menu.addAction("Use as input", lambda: self.vm.inputs.use_picture(self.vm.gallery.image(row).path))
        menu.popup(self.gallery.viewport().mapToGlobal(pos))

    def save_image(self, row: int) -> None:
        img = self.vm.gallery.image(row)
        dest = ask_save_path(self, "Save image", Path(img.path).name, "PNG images (*.png)")
        if dest:
            # Copy the file itself so the PNG keeps its parameters chunk (re-encoding would drop it).
            import shutil

            shutil.copyfile(img.path, dest)

    def copy_image(self, row: int) -> None:
        QGuiApplication.clipboard().setImage(QImage(self.vm.gallery.image(row).path))

    def use_settings(self, row: int) -> None:
        self.vm.use_image_settings(self.vm.gallery.image(row))

    def selected_gallery_image(self) -> str:
        idx = self.gallery.currentIndex()
        return idx.data(ImageRole).path if idx.isValid() else ""

    # ------------------------------------------------------------------ shelf actions needing dialogs
    def edit_adapter(self, path: str) -> None:
        from app.gui.dialogs import EditAdapterDialog

        row = self.shelf_vm.model.row_of(path)
        if row is None:
            return
        card = self.shelf_vm.model.item(row).card
        dialog = EditAdapterDialog(card.title, card.trigger, self.selected_gallery_image(), self)
        if dialog.exec():
            self.shelf_vm.edit(
                path, title=dialog.title(), trigger=dialog.trigger(), thumbnail_image=dialog.thumbnail() or None
            )

    def thumbnail_from_gallery(self, path: str) -> None:
        image = self.selected_gallery_image()
        if not image:
            self.vm.errorRaised.emit("Select an image in the gallery first, then choose this again.", "")
            return
        row = self.shelf_vm.model.row_of(path)
        if row is not None:
            card = self.shelf_vm.model.item(row).card
            self.shelf_vm.edit(path, title=card.title, trigger=card.trigger, thumbnail_image=image)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        if not self.vm.prompt_history:
            self.recent_menu.addAction("No prompts yet: the ones you generate with appear here").setEnabled(False)
        for prompt in self.vm.prompt_history:
            label = prompt if len(prompt) <= 70 else prompt[:67] + "…"
            act = self.recent_menu.addAction(label.replace("&", "&&"), lambda p=prompt: self.vm.reuse_prompt(p))
            act.setToolTip(prompt)

    def _fill_preset_menu(self) -> None:
        self.preset_menu.clear()
        self.preset_menu.addAction("Save current stack as…", self.save_preset)
        names = self.shelf_vm.preset_names()
        if names:
            self.preset_menu.addSeparator()
            for name in names:
                self.preset_menu.addAction(f"Load “{name}”", lambda n=name: self.shelf_vm.load_preset(n))

    def save_preset(self) -> None:
        name, ok = QInputDialog.getText(self, "Save stack preset", "Preset name:")
        if ok and name.strip():
            self.shelf_vm.save_preset(name.strip())

    def bake(self) -> None:
        from app.gui.dialogs import BakeDialog

        dialog = BakeDialog(self)
        if dialog.exec():
            self.shelf_vm.bake(dialog.out_path(), dialog.rank())

    def open_compare(self, grid_png: str = "") -> bool:
        from app.gui.compare_dialog import open_compare

        return open_compare(self, self.vm, grid_png)

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_paths(files)
        event.acceptProposedAction()

    def open_paths(self, files: list[str]) -> None:
        pngs = [f for f in files if f.lower().endswith(".png")]
        others = [f for f in files if f not in pngs]
        if pngs and not self.open_compare(pngs[0]):  # a comparison grid reopens as one
            self.vm.restore_from_png(pngs[0])
        adapters = [f for f in others if Path(f).suffix.lower() in (".safetensors", ".ckpt", ".pt", ".pth", ".bin")]
        if adapters:
            self.shelf_panel.drop_files(adapters)
        elif others:
            self.vm.errorRaised.emit(
                "Drop a PNG to restore its settings, or .safetensors adapters to import.", "\n".join(others)
            )
