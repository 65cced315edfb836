"""MaskCanvas: the input picture, fitted to the widget, with the mask painted over it in translucent white.

Left button paints what should be redrawn (or erases in erase mode), right button always erases. The
canvas maps widget positions to picture pixels and hands strokes to the InputImageModel, which owns the mask;
the brush size is in picture pixels, so a stroke covers the same part of the picture at any zoom.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.gui.input_image_vm import InputImageModel

MASK_TINT = QColor(255, 255, 255, 150)  # white like the mask itself (A1111 paints white too), see-through


class MaskCanvas(QWidget):
    strokeFinished = Signal()

    def __init__(self, model: InputImageModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.brush = 6.0  # radius in picture pixels
        self.erase = False
        self._last: QPointF | None = None
        self._erasing_now = False
        self._hover: QPointF | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Paint the area to redraw (inpainting); right-drag erases. Unpainted: the whole picture.")
        model.maskChanged.connect(self.update)
        model.changed.connect(self.update)

    # ------------------------------------------------------------------ geometry
    def picture_rect(self) -> QRectF:
        """Where the picture is drawn: fitted, centred, aspect kept."""
        pic = self.model.picture
        if pic.isNull():
            return QRectF()
        scale = min(self.width() / pic.width(), self.height() / pic.height())
        w, h = pic.width() * scale, pic.height() * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def to_picture(self, pos: QPointF) -> QPointF:
        rect = self.picture_rect()
        pic = self.model.picture
        return QPointF((pos.x() - rect.x()) * pic.width() / rect.width(),
                       (pos.y() - rect.y()) * pic.height() / rect.height())  # fmt: skip

    def to_widget(self, point: QPointF) -> QPointF:
        rect = self.picture_rect()
        pic = self.model.picture
        return QPointF(rect.x() + point.x() * rect.width() / pic.width(),
                       rect.y() + point.y() * rect.height() / pic.height())  # fmt: skip

    # ------------------------------------------------------------------ painting the mask
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.model.picture.isNull() or event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self._erasing_now = self.erase or event.button() == Qt.MouseButton.RightButton
        self._last = self.to_picture(event.position())
        self.model.paint(self._last, self._last, self.brush, self._erasing_now)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._hover = event.position()
        if self._last is not None:
            point = self.to_picture(event.position())
            self.model.paint(self._last, point, self.brush, self._erasing_now)
            self._last = point
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._last is not None:
            self._last = None
            self.model.commit_mask()
            self.strokeFinished.emit()

    def leaveEvent(self, _event) -> None:
        self._hover = None
        self.update()

    # ------------------------------------------------------------------ drawing
    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#26282c"))
        model = self.model
        if model.picture.isNull():
            painter.setPen(QColor("#c0c4cc"))
            text = (f"Input picture missing: {model.missing}\nDrop it (or another) here" if model.missing
                    else "Drop or paste a picture here")  # fmt: skip
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, text)
            return
        rect = self.picture_rect()
        small = model.picture.width() < rect.width() / 2  # tiny pictures: crisp pixels, not blur
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not small)
        painter.drawImage(rect, model.picture)
        if not model.mask.isNull():
            painter.drawImage(rect, _tint(model.mask))
        if self._hover is not None:
            scale = rect.width() / model.picture.width()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1.2))
            painter.drawEllipse(self._hover, self.brush * scale, self.brush * scale)
        painter.end()


def _tint(mask: QImage) -> QImage:
    """The mask as a translucent layer: painted pixels tinted, the rest clear."""
    alpha = mask.convertToFormat(QImage.Format.Format_Grayscale8)
    layer = QImage(mask.size(), QImage.Format.Format_ARGB32_Premultiplied)
    layer.fill(MASK_TINT)
    painter = QPainter(layer)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    painter.drawImage(0, 0, _as_alpha(alpha))
    painter.end()
    return layer


def _as_alpha(grey: QImage) -> QImage:
    # Converting Grayscale8 to Alpha8 would make every pixel opaque: reinterpret the grey bytes as alpha.
    out = QImage(grey.constBits(), grey.width(), grey.height(), grey.bytesPerLine(), QImage.Format.Format_Alpha8)
    return out.copy()
