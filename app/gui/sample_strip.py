"""The Train tab's samples: one tile per sample (base | adapter side by side), labelled with its step and
prompt, newest on the right; right-click makes one the style's shelf picture."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QScrollArea, QVBoxLayout, QWidget

TILE_HEIGHT = 64  # the picture's height on screen; a 64 px demo sample shows pixel for pixel


def tile_pixmap(path: str, height: int = TILE_HEIGHT) -> QPixmap:
    """The sample at ``height`` px: pixel-sharp when enlarged by a whole factor, smooth when shrunk."""
    pix = QPixmap(path)
    if pix.isNull() or pix.height() == height:
        return pix
    if pix.height() < height:
        factor = max(1, height // pix.height())
        return pix.scaled(
            pix.width() * factor,
            pix.height() * factor,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation,
        )
    return pix.scaledToHeight(height, Qt.TransformationMode.SmoothTransformation)


class SampleTile(QFrame):
    def __init__(self, step: int, path: str, prompt: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step, self.path, self.prompt = step, path, prompt
        self.image = QLabel()
        self.image.setPixmap(tile_pixmap(path))
        width = max(120, self.image.pixmap().width())
        self.step_label = QLabel(f"<b>step {step}</b>")
        self.caption = QLabel()
        self.caption.setObjectName("Muted")
        # Elided to the tile's width, whole in the tooltip: the prompt never spills into the next tile.
        self.caption.setText(self.caption.fontMetrics().elidedText(prompt, Qt.TextElideMode.ElideRight, width))
        self.caption.setFixedWidth(width)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        layout.addWidget(self.image)
        layout.addWidget(self.step_label)
        layout.addWidget(self.caption)
        self.setToolTip(
            f"Step {step}\n“{prompt}”\nLeft: the base model · right: with the adapter (same seed)\n"
            "Right-click to make it the style's shelf picture"
        )


class SampleStrip(QScrollArea):
    """Samples pile up over a long run: they scroll sideways, never squash."""

    thumbnailChosen = Signal(str)  # a sample's path, picked as the shelf picture

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.addStretch(1)
        holder = QWidget()
        holder.setLayout(self.row)
        self.setWidget(holder)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(TILE_HEIGHT + 58)
        self.can_choose = False  # only once the run's adapter exists

    def add(self, step: int, samples: list[tuple[str, str]]) -> None:
        for path, prompt in samples:
            self.row.insertWidget(self.row.count() - 1, SampleTile(step, path, prompt))
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().maximum())

    def tiles(self) -> list[SampleTile]:
        return [w for i in range(self.row.count()) if isinstance(w := self.row.itemAt(i).widget(), SampleTile)]

    def clear(self) -> None:
        for tile in self.tiles():
            self.row.removeWidget(tile)
            tile.deleteLater()

    def contextMenuEvent(self, event) -> None:
        tile = next((t for t in self.tiles() if t.rect().contains(t.mapFrom(self, event.pos()))), None)
        if tile is None:
            return
        menu = QMenu(self)
        action = menu.addAction("Use as the style's shelf picture")
        action.setEnabled(self.can_choose and Path(tile.path).is_file())
        if menu.exec(event.globalPos()) is action:
            self.thumbnailChosen.emit(tile.path)
