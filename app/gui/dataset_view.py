"""The dataset thumbnail grid: icon-mode list view with inline caption editing and "skipped" badges."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.gui.dataset_model import SkipReasonRole
from app.gui.theme import DANGER


class _BadgeDelegate(QStyledItemDelegate):
    """Paints the normal icon + caption, then a red "skipped" badge over files that will not be used."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        super().paint(painter, option, index)
        reason = index.data(SkipReasonRole)
        if not reason:
            return
        painter.save()
        rect = QRect(option.rect.left() + 6, option.rect.top() + 6, option.rect.width() - 12, 20)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor(DANGER))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "skipped")
        painter.restore()

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index) -> QWidget:
        # One line inside the item's own cell: Qt's default caption editor in icon mode grows over the
        # neighbouring captions.
        editor = QLineEdit(parent)
        editor.setFrame(True)
        editor.setToolTip("Enter saves the caption beside the image; Esc cancels")
        return editor

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index) -> None:
        cell = option.rect
        height = min(editor.sizeHint().height(), cell.height())
        editor.setGeometry(QRect(cell.left() + 1, cell.bottom() - height, cell.width() - 2, height))


class DatasetGrid(QListView):
    def __init__(self, parent: QWidget | None = None, *, thumb: int = 128) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(thumb, thumb))
        self.setGridSize(QSize(thumb + 24, thumb + 52))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # constant-time layout for hundreds of items
        self.setWordWrap(True)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setSpacing(4)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(64)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setItemDelegate(_BadgeDelegate(self))
        self.setToolTip("Double-click a caption to edit it; it is saved next to the image as a .txt file.")
