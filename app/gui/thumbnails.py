"""Loads image thumbnails off the UI thread, once each, only when a view asks for them.

``QImageReader.setScaledSize`` decodes JPEGs at reduced size, so even large photos are cheap; results
are cached by path. Views only request visible rows, so a folder of hundreds of images stays smooth.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, QSize, Qt, Signal, Slot
from PySide6.QtGui import QImage, QImageReader, QPixmap


class _Signals(QObject):
    loaded = Signal(str, QImage)


def _load(path: str, size: int, signals: _Signals) -> None:
    """Runs on a pool thread: decode at thumbnail size (QImage is safe off the UI thread)."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)  # EXIF orientation, as training sees the image
    original = reader.size()
    if original.isValid() and not original.isEmpty():
        reader.setScaledSize(original.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    signals.loaded.emit(path, reader.read())  # a null image marks "unreadable"


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
        # Python threads, not QRunnable subclasses: PySide6 6.12 corrupts refcounts when Python
        # QRunnables are deleted on Qt pool threads ("bool_dealloc" at exit).
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="thumbnails")

    def get(self, path: str) -> QPixmap | None:
        if path in self._pixmaps:
            return self._pixmaps[path]
        if path not in self._pending:
            self._pending.add(path)
            self._pool.submit(_load, path, self.size, self._signals)
        return None

    def is_loaded(self, path: str) -> bool:
        return path in self._pixmaps

    def loaded_count(self) -> int:
        return len(self._pixmaps)

    def clear(self) -> None:
        self._pixmaps.clear()
        self._pending.clear()

    # A decorated slot on a UI-thread QObject: the pool thread's signal is queued to the UI thread.
    # (A lambda or plain function here would run in the pool thread, and PySide6 then corrupts
    # refcounts: "bool_dealloc" at exit.)
    @Slot(str, QImage)
    def _on_loaded(self, path: str, image: QImage) -> None:
        if path not in self._pending:
            return  # cleared meanwhile (a new folder was opened)
        self._pending.discard(path)
        self._pixmaps[path] = QPixmap.fromImage(image) if not image.isNull() else None
        self.ready.emit(path)
