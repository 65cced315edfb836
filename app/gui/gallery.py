"""The gallery of generated images: a Qt list model plus an icon view and a full-size viewer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QDialog, QLabel, QListView, QScrollArea, QVBoxLayout, QWidget

from app.gui.image_info import full_text, tile_text
from app.gui.thumbnails import ThumbnailCache

Index = QModelIndex | QPersistentModelIndex
ImageRole = Qt.ItemDataRole.UserRole + 20


@dataclass
class GalleryImage:
    path: str
    seed: int = 0
    params: Any = None  # the GenerateConfig (with stack) that made it
    extra: dict[str, Any] = field(default_factory=dict)


class GalleryModel(QAbstractListModel):
    def __init__(self, parent=None, *, thumb: int = 160) -> None:
        super().__init__(parent)
        self._images: list[GalleryImage] = []
        self.thumbnails = ThumbnailCache(thumb, self)
        self.thumbnails.ready.connect(self._ready)
        blank = QPixmap(thumb, thumb)
        blank.fill(QColor("#3a3c42"))
        self._placeholder = QIcon(blank)

    def add(self, image: GalleryImage) -> None:
        # Newest first: the image you just made is where you look.
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._images.insert(0, image)
        self.endInsertRows()

    def image(self, row: int) -> GalleryImage:
        return self._images[row]

    def images(self) -> list[GalleryImage]:
        return list(self._images)

    def params_of(self, img: GalleryImage) -> Any:
        """The settings that made ``img``: from memory for this session's pictures, else read once from the PNG
        (pictures from earlier sessions), None when the file has none."""
        if img.params is not None:
            return img.params
        if "png_params" not in img.extra:
            from app.engine import facade

            try:
                # Names and strengths only: matching adapters to shelf files waits for "Use these settings".
                img.extra["png_params"] = facade.read_png_parameters(img.path, find_adapters=False)
            except Exception:  # noqa: BLE001 - a PNG without parameters is described as such
                img.extra["png_params"] = None
        return img.extra["png_params"]

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._images)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        img = self._images[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            pix = self.thumbnails.get(img.path)
            if pix is None:
                return self._placeholder
            # The picture itself when selected too: Qt's selected-icon mode tints it with the highlight colour,
            # which made the chosen image look washed out next to the same image in the preview.
            icon = QIcon(pix)
            icon.addPixmap(pix, QIcon.Mode.Selected)
            return icon
        if role == Qt.ItemDataRole.DisplayRole:
            return tile_text(self.params_of(img), img.seed)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                f"{full_text(self.params_of(img), img.seed, Path(img.path).name)}\n"
                "Double-click to enlarge, right-click for more"
            )
        if role == ImageRole:
            return img
        return None

    def _ready(self, path: str) -> None:
        for row, img in enumerate(self._images):
            if img.path == path:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class GalleryView(QListView):
    def __init__(self, parent: QWidget | None = None, *, thumb: int = 160) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(thumb, thumb))
        # Two lines under each picture: its styles and strengths, then seed · sampler · steps.
        self.setGridSize(QSize(thumb + 24, thumb + 46))
        # One line each, cut with "…" rather than wrapped: the full text is in the tooltip and the details panel.
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)


class ImageViewer(QDialog):
    """Full-size view of one image (click a gallery item to open)."""

    def __init__(self, path: str, caption: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(Path(path).name)
        label = QLabel()
        pix = QPixmap(path)
        # Tiny models make 64 px images: show them big with crisp pixels, not a postage stamp.
        if not pix.isNull() and pix.width() < 384:
            pix = pix.scaled(
                pix.size() * (512 // max(pix.width(), 1)),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        label.setPixmap(pix)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(label)
        scroll.setWidgetResizable(True)
        text = QLabel(caption)
        text.setWordWrap(True)
        text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(text)
        self.resize(min(pix.width() + 40, 1000), min(pix.height() + 90, 900))
