"""One adapter card: thumbnail, title, trigger phrase, family badge, toggle, weight slider + box.

A card is a view of one ShelfModel row: it shows the row's data and writes changes back through the
model (``set_enabled`` / ``set_weight``); it keeps no state of its own.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, Qt, Signal
from PySide6.QtGui import QDrag, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.engine.facade import AdapterCard
from app.gui.number_box import show_value, strength_box
from app.gui.shelf_model import FAMILY_LABELS, WEIGHT_MAX, WEIGHT_MIN

ROW_MIME = "application/x-styleshelf-shelf-row"
THUMB = 56


def _placeholder(title: str) -> QPixmap:
    """A coloured tile with the title's initial, so cards without a thumbnail still differ at a glance."""
    from PySide6.QtGui import QColor, QFont, QPainter

    pix = QPixmap(THUMB, THUMB)
    hue = sum(map(ord, title)) * 37 % 360
    pix.fill(QColor.fromHsl(hue, 90, 70))
    painter = QPainter(pix)
    font = QFont()
    font.setPixelSize(26)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#f0f0f0"))
    painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, (title[:1] or "?").upper())
    painter.end()
    return pix


def _strength_box(tooltip: str) -> QDoubleSpinBox:
    box = strength_box(tooltip, WEIGHT_MIN, WEIGHT_MAX)
    box.setFixedWidth(66)
    return box


class ShelfCard(QFrame):
    toggled = Signal(str, bool)  # adapter path, on
    weightChanged = Signal(str, float)
    textWeightChanged = Signal(str, float)  # adapter path, text-encoder weight (only cards with TE LoRA)
    contextMenuRequested = Signal(str, QPoint)  # adapter path, global position

    def __init__(self, card: AdapterCard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ShelfCard")
        self.path = card.path
        self._press: QPoint | None = None
        self._updating = False
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: 600;")
        # A long title may be cut at the right; the toggle and the strength box must never be (tooltip: full title).
        self.title.setMinimumWidth(24)
        self.trigger = QLabel()
        self.trigger.setObjectName("Muted")
        self.badge = QLabel()
        self.badge.setObjectName("Badge")
        self.warn_icon = QLabel()  # beside the badge when the adapter does not fit the base model
        self.warn_icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(16, 16))
        self.warn_icon.hide()
        self.byline = QLabel()  # author, last change, folder: tells same-titled files from two people apart
        self.byline.setObjectName("Muted")
        self.toggle = QCheckBox()
        self.toggle.setToolTip("Use this style in the next image")
        self.toggle.toggled.connect(lambda on: self._emit_toggle(on))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(WEIGHT_MIN * 100), int(WEIGHT_MAX * 100))
        self.slider.setSingleStep(5)
        self.slider.setPageStep(25)
        self.slider.setToolTip("Strength: 1 = as trained, 0 = off, negative = away from the style")
        self.spin = _strength_box(self.slider.toolTip())
        self.slider.valueChanged.connect(lambda v: self._emit_weight(v / 100.0))
        self.spin.valueChanged.connect(lambda v: self._emit_weight(float(v)))
        # Only for adapters that also change the text encoder (kohya trains it by default): ComfyUI's
        # "strength_clip". It follows the weight until the user sets it.
        self.text_label = QLabel("text encoder")
        self.text_label.setObjectName("Muted")
        self.text_spin = _strength_box(
            "Strength of the adapter's text-encoder part (follows the strength until you set it)"
        )
        self.text_spin.valueChanged.connect(lambda v: self._emit_text_weight(float(v)))

        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.title, 1)
        top.addWidget(self.warn_icon)
        top.addWidget(self.badge)
        top.addWidget(self.toggle)
        weight = QHBoxLayout()
        weight.addWidget(self.slider, 1)
        weight.addWidget(self.spin)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addLayout(top)
        text.addWidget(self.trigger)
        text.addWidget(self.byline)
        text.addLayout(weight)
        text_row = QHBoxLayout()
        text_row.addStretch(1)
        text_row.addWidget(self.text_label)
        text_row.addWidget(self.text_spin)
        text.addLayout(text_row)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 6)
        grid.addWidget(self.thumb, 0, 0)
        grid.addLayout(text, 0, 1)
        grid.setColumnStretch(1, 1)
        self.set_card(card)

    def set_card(self, card: AdapterCard) -> None:
        self.path = card.path
        self.title.setText(card.title)
        self.title.setToolTip(card.title)
        self.trigger.setText(f"trigger: {card.trigger}" if card.trigger else "no trigger word")
        pix = QPixmap()
        if card.thumbnail_png and pix.loadFromData(card.thumbnail_png):
            self.thumb.setPixmap(
                pix.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
            )
        else:
            self.thumb.setPixmap(_placeholder(card.title))
        self.badge.setText(FAMILY_LABELS.get(card.family, card.family or "?"))
        self.byline.setText("⚠ file gone: left out of images" if card.missing else card.byline)
        self.byline.setToolTip(card.path)
        self.byline.setVisible(bool(self.byline.text()))
        self.text_label.setVisible(card.has_text_encoder)
        self.text_spin.setVisible(card.has_text_encoder)

    def set_state(self, enabled: bool, weight: float, mismatch: str, text_weight: float | None = None) -> None:
        self._updating = True
        try:
            self.toggle.setChecked(enabled)
            self.slider.setValue(int(round(weight * 100)))
            show_value(self.spin, weight)
            show_value(self.text_spin, weight if text_weight is None else text_weight)
        finally:
            self._updating = False
        self.setProperty("enabledState", "true" if enabled else "false")
        self.badge.setProperty("warn", "true" if mismatch else "false")
        self.badge.setToolTip(mismatch or "Base model family this adapter was trained for")
        self.warn_icon.setVisible(bool(mismatch))
        self.warn_icon.setToolTip(mismatch)
        for w in (self, self.badge):
            w.style().unpolish(w)
            w.style().polish(w)

    def _emit_toggle(self, on: bool) -> None:
        if not self._updating:
            self.toggled.emit(self.path, on)

    def _emit_weight(self, value: float) -> None:
        if not self._updating:
            self.weightChanged.emit(self.path, round(value, 3))

    def _emit_text_weight(self, value: float) -> None:
        if not self._updating:
            self.textWeightChanged.emit(self.path, round(value, 3))

    # ------------------------------------------------------------------ drag to reorder, right-click
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None or not (event.buttons() & Qt.MouseButton.LeftButton):
            return
        if (event.position().toPoint() - self._press).manhattanLength() < QApplication.startDragDistance():
            return
        drag = QDrag(self)
        mime = QMimeData()
        mime.setData(ROW_MIME, self.path.encode("utf-8"))
        drag.setMimeData(mime)
        drag.setPixmap(self.grab().scaledToWidth(220, Qt.TransformationMode.SmoothTransformation))
        self._press = None
        drag.exec(Qt.DropAction.MoveAction)

    def contextMenuEvent(self, event) -> None:
        self.contextMenuRequested.emit(self.path, event.globalPos())
