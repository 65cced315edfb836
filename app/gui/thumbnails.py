"""Loads image thumbnails off the UI thread, once each, only when a view asks for them.

``QImageReader.setScaledSize`` decodes JPEGs at reduced size, so even large photos are cheap; results
are cached by path. Views only request visible rows, so a folder of hundreds of images stays smooth.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap


class _Signals(QObject):
    loaded = Signal(str, QImage)


class _LoadJob(QRunnable):
    def __init__(self, path: str, size: int, signals: _Signals) -> None:
        super().__init__()
        self.path, self.size, self.signals = path, size, signals

    def run(self) -> None:
        reader = QImageReader(self.path)
        reader.setAutoTransform(True)  # EXIF orientation, as training sees the image
        original = reader.size()
        if original.isValid() and original.width() > 0 and original.height() > 0:
            scaled = original.scaled(QSize(self.size, self.size), Qt.AspectRatioMode.KeepAspectRatio)
            reader.setScaledSize(scaled)
        image = reader.read()
        self.signals.loaded.emit(self.path, image)  # a null image marks "unreadable"


class ThumbnailCache(QObject):
    """``get(path)`` returns a pixmap or None (and starts loading); ``ready(path)`` fires when loaded."""

    ready = Signal(str)

    def __init__(self, size: int = 128, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: dict[str, QPixmap | None] = {}
        self._pending: set[str] = set()
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)

    def get(self, path: str) -> QPixmap | None:
        if path in self._pixmaps:
            return self._pixmaps[path]
        if path not in self._pending:
            self._pending.add(path)
            self.pool.start(_LoadJob(path, self.size, self._signals))
        return None

    def is_loaded(self, path: str) -> bool:
        return path in self._pixmaps

    def loaded_count(self) -> int:
        return len(self._pixmaps)

    def clear(self) -> None:
        self._pixmaps.clear()
        self._pending.clear()

    def wait(self, msecs: int = 10_000) -> None:
        self.pool.waitForDone(msecs)

    def _on_loaded(self, path: str, image: QImage) -> None:
        if path not in self._pending:
            return  # cleared meanwhile (a new folder was opened)
        self._pending.discard(path)
        self._pixmaps[path] = QPixmap.fromImage(image) if not image.isNull() else None
        self.ready.emit(path)
