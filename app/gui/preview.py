"""The Generate tab's preview and the details beside it.

``ImagePreview`` draws a picture as large as it fits without changing its shape; a picture smaller than the room
is enlarged by a whole factor with nearest-neighbour sampling, so a 64 px picture stays pixel-sharp instead of
blurred or stretched. ``ImageDetails`` lists every parameter of the shown picture, says where it was saved and
offers "Use these settings" and "Open folder".
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QSizePolicy, QStyle, QVBoxLayout, QWidget


def fit_rect(image: QSize, room: QSize) -> tuple[QRect, bool]:
    """Where to draw ``image`` inside ``room`` (centred, shape kept) and whether to sample nearest-neighbour.

    Smaller than the room → the largest whole factor that fits (pixel-sharp); larger → scaled down smoothly.
    """
    if image.isEmpty() or room.isEmpty():
        return QRect(), False
    scale = min(room.width() / image.width(), room.height() / image.height())
    whole = scale >= 1
    if whole:
        scale = float(int(scale))
    w, h = max(1, round(image.width() * scale)), max(1, round(image.height() * scale))
    return QRect((room.width() - w) // 2, (room.height() - h) // 2, w, h), whole


class ImagePreview(QWidget):
    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap = QPixmap()
        self._placeholder = placeholder
        self.path = ""
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, path: str) -> bool:
        pix = QPixmap(path)
        if pix.isNull():
            return False
        self._pixmap, self.path = pix, path
        self.update()
        return True

    def image_rect(self) -> QRect:
        return fit_rect(self._pixmap.size(), self.size())[0]

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        if self._pixmap.isNull():
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        rect, sharp = fit_rect(self._pixmap.size(), self.size())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not sharp)
        painter.drawPixmap(rect, self._pixmap)


class ImageDetails(QWidget):
    """The full parameters of the shown picture, where it is saved, and what can be done with it."""

    useSettingsRequested = Signal()

    def __init__(self, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.text = QLabel("Pick a picture in the gallery to see what made it.")
        self.text.setObjectName("Muted")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.use_button = QPushButton("Use these settings")
        self.use_button.setToolTip("Put this picture's prompt, settings and styles back in the form and on the shelf")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.useSettingsRequested)
        self.saved_label = QLabel(f"Pictures are saved automatically in\n{folder}")
        self.saved_label.setObjectName("Muted")
        self.saved_label.setWordWrap(True)
        self.open_button = QPushButton("Open folder")
        self.open_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        self.open_button.setToolTip("Show the saved pictures in your file manager")
        self.open_button.clicked.connect(self.open_folder)
        # Scrolls rather than clips: a long prompt at 1024×640 is still readable in full.
        scroll = QScrollArea()
        scroll.setWidget(self.text)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.use_button)
        layout.addWidget(self.saved_label)
        layout.addWidget(self.open_button)
        self.setMinimumWidth(150)
        self.setMaximumWidth(260)

    def show_details(self, text: str) -> None:
        self.text.setText(text)
        self.text.setObjectName("")
        self.text.style().unpolish(self.text)
        self.text.style().polish(self.text)
        self.use_button.setEnabled(True)

    def open_folder(self) -> None:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.folder))
