"""The Generate tab's input panel: restyle a picture (image to image), paint a mask (inpainting), batch restyle.

In text-to-image mode it is one row (pick a picture, batch restyle a folder, a hint that dropping or pasting
onto the preview works too). With an input picture it shows the picture with the mask brush, the denoising
strength, resize mode, the brush tools (size, erase, clear, invert), the inpainting options once something
is painted, and a clear "Text to image" button back. ``attach_input_panel`` is the tab's one hook: it puts
the panel beside the preview and makes the preview, the tab and Ctrl+V accept pictures.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui.input_image_vm import PICTURE_SUFFIXES, InputImageModel
from app.gui.mask_canvas import MaskCanvas
from app.gui.number_box import fit_to_setting


class InputImagePanel(QWidget):
    def __init__(self, model: InputImageModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._updating = False

        # ---- text-to-image row
        self.pick_button = _button(
            "Restyle a picture…",
            self.pick_picture,
            "Image to image: start from your own picture (or drop / paste one on the preview)",
        )
        self.batch_button = _button("Batch restyle…", self.pick_batch,
                                    "Restyle a whole folder: every picture with the same styles, prompt and strength; "
                                    "each output is named after its input")  # fmt: skip
        hint = QLabel("or drop / paste (Ctrl+V) a picture onto the preview")
        hint.setObjectName("Muted")
        hint.setWordWrap(True)  # the row must fit beside the form and the shelf in a 1024 px window
        self.text_row = QWidget()
        column = QVBoxLayout(self.text_row)  # the hint under the buttons: beside them it widened the tab past 1024 px
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(self.pick_button)
        row.addWidget(self.batch_button)
        row.addStretch(1)
        column.addLayout(row)
        column.addWidget(hint)

        # ---- image-to-image view
        self.title = QLabel()
        self.title.setObjectName("Heading")
        self.back_button = _button(
            "Text to image", model.back_to_text, "Stop using the input picture: generate from the prompt alone"
        )
        # A theme icon, not a "✕" glyph: many common fonts draw dingbats as empty boxes.
        self.back_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogCloseButton))
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.back_button)
        self.canvas = MaskCanvas(model)

        settings = facade.generate_settings()  # ranges and tooltips: GenerateConfig's, defined once
        strength = settings["strength"]
        self._strength_step = strength.step  # the slider counts steps of the setting
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(round(strength.minimum / strength.step), round(strength.maximum / strength.step))
        self.strength.setToolTip(strength.help)
        self.strength.valueChanged.connect(self._strength_moved)
        self.strength_label = QLabel()
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(self.strength_label)
        self.resize_mode = self._combo(settings["resize_mode"])

        self.brush = QSpinBox()
        self.brush.setRange(1, 256)
        self.brush.setValue(int(self.canvas.brush))
        self.brush.setSuffix(" px")
        self.brush.setToolTip("Brush radius, in the picture's pixels")
        self.brush.valueChanged.connect(lambda v: setattr(self.canvas, "brush", float(v)))
        self.erase = QCheckBox("Erase")
        self.erase.setToolTip("Paint to keep instead of to redraw (right-drag always erases)")
        self.erase.toggled.connect(lambda on: setattr(self.canvas, "erase", bool(on)))
        tools = QHBoxLayout()
        for widget in (
            QLabel("Brush"),
            self.brush,
            self.erase,
            None,
            _button("Clear", model.clear_mask, "Remove the mask: restyle the whole picture"),
            _button("Invert", model.invert_mask, "Redraw everything except what is painted"),
        ):
            tools.addWidget(widget) if widget is not None else tools.addStretch(1)

        self.mask_blur = QSpinBox()
        fit_to_setting(self.mask_blur, settings["mask_blur"])
        self.mask_blur.valueChanged.connect(lambda v: self._set("mask_blur", int(v)))
        self.inpaint_area = self._combo(settings["inpaint_area"])
        self.padding = QSpinBox()
        fit_to_setting(self.padding, settings["inpaint_padding"])
        self.padding.setSuffix(" px")
        self.padding.valueChanged.connect(lambda v: self._set("inpaint_padding", int(v)))
        self.masked_content = self._combo(settings["masked_content"])
        self.inpaint_form = QWidget()
        inpaint = QFormLayout(self.inpaint_form)
        inpaint.setContentsMargins(0, 0, 0, 0)
        inpaint.addRow("Mask blur", self.mask_blur)
        inpaint.addRow("Inpaint area", self.inpaint_area)
        inpaint.addRow("Padding", self.padding)
        inpaint.addRow("Masked content", self.masked_content)

        form = QFormLayout()
        form.addRow("Strength", strength_row)
        form.addRow("Resize", self.resize_mode)
        self.image_view = QWidget()
        view = QVBoxLayout(self.image_view)
        view.setContentsMargins(0, 0, 0, 0)
        view.addLayout(head)
        view.addWidget(self.canvas, 1)
        view.addLayout(form)
        view.addLayout(tools)
        view.addWidget(self.inpaint_form)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image_view, 1)  # the text-to-image row is placed by attach_input_panel
        model.changed.connect(self.refresh)
        model.maskChanged.connect(self._refresh_mode)
        self.refresh()

    def _combo(self, setting) -> QComboBox:
        box = QComboBox()
        box.addItems([str(c) for c in setting.choices])
        box.setToolTip(setting.help)
        box.currentTextChanged.connect(lambda t, name=setting.name: self._set(name, t))
        return box

    def _set(self, name: str, value) -> None:
        if not self._updating:
            self.model.set_setting(name, value)

    def _strength_moved(self, value: int) -> None:
        strength = round(value * self._strength_step, 6)
        self.strength_label.setText(f"{strength:.2f}")
        self._set("strength", strength)

    # ------------------------------------------------------------------ model → widgets
    def refresh(self) -> None:
        p = self.model.params
        self._updating = True
        try:
            self.strength.setValue(round(p.strength / self._strength_step))
            self.strength_label.setText(f"{p.strength:.2f}")
            self.resize_mode.setCurrentText(p.resize_mode)
            self.mask_blur.setValue(p.mask_blur)
            self.inpaint_area.setCurrentText(p.inpaint_area)
            self.padding.setValue(p.inpaint_padding)
            self.masked_content.setCurrentText(p.masked_content)
        finally:
            self._updating = False
        self._refresh_mode()

    def _refresh_mode(self) -> None:
        p = self.model.params
        image_mode = bool(p.init_image)
        self.text_row.setVisible(not image_mode)
        self.setVisible(image_mode)
        self.inpaint_form.setVisible(bool(p.mask_image))
        name = Path(p.init_image).name
        self.title.setText(f"Inpainting {name}: the painted area is redrawn" if p.mask_image
                           else f"Image to image: restyling {name}" if image_mode else "")  # fmt: skip

    # ------------------------------------------------------------------ actions needing dialogs
    def pick_picture(self) -> None:
        pattern = " ".join(f"*{s}" for s in PICTURE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Restyle a picture", "", f"Pictures ({pattern})")
        if path:
            self.model.use_picture(path)

    def pick_batch(self) -> None:
        in_dir = QFileDialog.getExistingDirectory(self, "Folder of pictures to restyle")
        if not in_dir:
            return
        out_dir = QFileDialog.getExistingDirectory(self, "Where the restyled pictures go", str(Path(in_dir).parent))
        if out_dir:
            self.model.restyle_folder(in_dir, out_dir)


def _button(text: str, slot, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class _PictureDrops(QObject):
    """Drops onto the preview (any picture) or the tab (pictures without settings) become the input."""

    def __init__(self, model: InputImageModel, preview: QWidget, tab: QWidget) -> None:
        super().__init__(tab)
        self.model, self.preview, self.tab = model, preview, tab

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.Drop):
            return False
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        picture = next((f for f in files if Path(f).suffix.lower() in PICTURE_SUFFIXES), "")
        has_image = event.mimeData().hasImage()
        onto_preview = watched is not self.tab
        if not picture and not has_image:
            return False
        if not onto_preview and picture and (picture.lower().endswith(".png") and facade.png_has_parameters(picture)):
            return False  # a PNG with settings dropped on the tab restores them (the tab's own behaviour)
        event.acceptProposedAction()
        if kind == QEvent.Type.Drop:
            if picture:
                self.model.use_picture(picture)
            else:
                self.model.use_qimage(event.mimeData().imageData())
        return True


def paste_picture(model: InputImageModel) -> None:
    mime = QGuiApplication.clipboard().mimeData()
    files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
    picture = next((f for f in files if Path(f).suffix.lower() in PICTURE_SUFFIXES), "")
    if picture:
        model.use_picture(picture)
    else:
        model.use_qimage(QGuiApplication.clipboard().image())


def attach_input_panel(tab: QWidget, preview: QWidget, model: InputImageModel) -> QWidget:
    """The tab's hook: the text-to-image row above [input panel | preview], picture drops and Ctrl+V.
    Returns the container to put where the preview was."""
    tab.input_panel = InputImagePanel(model)
    split = QSplitter(Qt.Orientation.Horizontal)
    split.addWidget(tab.input_panel)
    split.addWidget(preview)
    split.setStretchFactor(0, 1)
    split.setStretchFactor(1, 1)
    container = QWidget()
    column = QVBoxLayout(container)
    column.setContentsMargins(0, 0, 0, 0)
    column.addWidget(tab.input_panel.text_row)
    column.addWidget(split, 1)
    drops = _PictureDrops(model, preview, tab)
    for widget in (preview, tab.input_panel.canvas, tab):
        widget.setAcceptDrops(True)
        widget.installEventFilter(drops)
    # Text fields keep Ctrl+V for text (they take the shortcut first); elsewhere it pastes a picture.
    paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), tab)
    paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    paste.activated.connect(lambda: paste_picture(model))
    tab.paste_shortcut = paste
    return container
