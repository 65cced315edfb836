"""DatasetModel: the Train tab's images, captions and skip reasons as a Qt list model.

Rows come from ``facade.scan_dataset``. Display = caption (editable: saved to the ``.txt`` sidecar),
decoration = a lazily loaded thumbnail, ``SkipReasonRole`` = why a file will not be used.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap

from app.engine.facade import DatasetEntry, DatasetSummary, UserError, write_caption
from app.gui.thumbnails import ThumbnailCache

PathRole = Qt.ItemDataRole.UserRole + 1
SkipReasonRole = Qt.ItemDataRole.UserRole + 2
CaptionRole = Qt.ItemDataRole.UserRole + 3

Index = QModelIndex | QPersistentModelIndex


class DatasetModel(QAbstractListModel):
    countsChanged = Signal(int, int)  # usable, skipped
    captionSaveFailed = Signal(str, str)  # message, details

    def __init__(self, parent=None, *, thumb_size: int = 128) -> None:
        super().__init__(parent)
        self.folder = ""
        self._entries: list[DatasetEntry] = []
        self._row_of: dict[str, int] = {}
        self.thumbnails = ThumbnailCache(thumb_size, self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        placeholder = QPixmap(thumb_size, thumb_size)
        placeholder.fill(QColor("#3a3c42"))
        self._placeholder = QIcon(placeholder)

    # ------------------------------------------------------------------ contents
    def set_summary(self, summary: DatasetSummary) -> None:
        self.beginResetModel()
        self.thumbnails.clear()
        self.folder = summary.folder
        self._entries = list(summary.entries)
        self._row_of = {e.path: i for i, e in enumerate(self._entries)}
        self.endResetModel()
        self.countsChanged.emit(self.usable_count(), self.skipped_count())

    def clear(self) -> None:
        self.set_summary(DatasetSummary(folder=""))

    def entries(self) -> list[DatasetEntry]:
        return list(self._entries)

    def usable_count(self) -> int:
        return sum(1 for e in self._entries if not e.skipped_reason)

    def skipped_count(self) -> int:
        return len(self._entries) - self.usable_count()

    def skipped(self) -> list[tuple[str, str]]:
        return [(Path(e.path).name, e.skipped_reason) for e in self._entries if e.skipped_reason]

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.skipped_reason and f"Skipped: {entry.skipped_reason}" or entry.caption or Path(entry.path).stem
        if role in (Qt.ItemDataRole.EditRole, CaptionRole):
            return entry.caption
        if role == Qt.ItemDataRole.DecorationRole:
            if entry.skipped_reason:
                return self._placeholder
            pixmap = self.thumbnails.get(entry.path)
            return QIcon(pixmap) if pixmap is not None else self._placeholder
        if role == Qt.ItemDataRole.ToolTipRole:
            name = Path(entry.path).name
            return f"{name}\nSkipped: {entry.skipped_reason}" if entry.skipped_reason else f"{name}\n{entry.caption}"
        if role == PathRole:
            return entry.path
        if role == SkipReasonRole:
            return entry.skipped_reason
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and not self._entries[index.row()].skipped_reason:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        entry = self._entries[index.row()]
        if entry.skipped_reason:
            return False
        text = str(value).strip()
        try:
            write_caption(entry.path, text)
        except (OSError, UserError) as err:
            self.captionSaveFailed.emit(f"Could not save the caption of {Path(entry.path).name}.", str(err))
            return False
        entry.caption = text
        self.dataChanged.emit(index, index)
        return True

    def _thumbnail_ready(self, path: str) -> None:
        row = self._row_of.get(path)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])
