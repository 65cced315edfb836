"""ShelfModel: the adapter cards, their order, toggles and weights, as a Qt list model.

The order of rows is the stack order. ``stack_entries()`` is what the next generation uses; toggling or
reweighting only edits this model (no engine call), so it takes effect on the next image without
reloading anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from app.engine.facade import AdapterCard, StackEntry

Index = QModelIndex | QPersistentModelIndex

CardRole = Qt.ItemDataRole.UserRole + 10
EnabledRole = Qt.ItemDataRole.UserRole + 11
WeightRole = Qt.ItemDataRole.UserRole + 12
MismatchRole = Qt.ItemDataRole.UserRole + 13
TextWeightRole = Qt.ItemDataRole.UserRole + 14  # the text-encoder weight; None = the same as the weight

FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sd2-v": "SD 2.x-v", "sdxl": "SDXL", "demo": "Demo"}
WEIGHT_MIN, WEIGHT_MAX = -2.0, 2.0
# Above this summed strength stacked styles tend to wipe out the subject (the A1111/ComfyUI rule of thumb: keep
# the sum of the weights near 1).
HIGH_TOTAL_STRENGTH = 1.2


@dataclass
class ShelfItem:
    card: AdapterCard
    enabled: bool = False
    weight: float = 1.0
    text_encoder_weight: float | None = None  # ComfyUI's "strength_clip"; None follows ``weight``


def families_compatible(adapter: str, base: str) -> bool:
    if not adapter or not base:
        return True  # unknown is shown as unknown, not as a mismatch
    group = {"sd2-v": "sd2"}
    return group.get(adapter, adapter) == group.get(base, base)


class ShelfModel(QAbstractListModel):
    stackChanged = Signal()  # a toggle, weight or order changed: the next image uses the new stack

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[ShelfItem] = []
        self.base_family = ""

    # ------------------------------------------------------------------ contents
    def set_cards(self, cards: list[AdapterCard]) -> None:
        """Replace the cards, keeping toggles/weights/order of adapters already on the shelf."""
        old = {item.card.path: item for item in self._items}
        order = {item.card.path: i for i, item in enumerate(self._items)}
        items = [
            ShelfItem(c, old[c.path].enabled, old[c.path].weight, old[c.path].text_encoder_weight)
            if c.path in old
            else ShelfItem(c)
            for c in cards
        ]
        items.sort(key=lambda it: (order.get(it.card.path, len(order)), it.card.title.lower()))
        self.beginResetModel()
        self._items = items
        self.endResetModel()
        self.stackChanged.emit()

    def add_card(self, card: AdapterCard, *, enabled: bool = False) -> int:
        for row, item in enumerate(self._items):
            if item.card.path == card.path:
                item.card = card
                self.dataChanged.emit(self.index(row), self.index(row))
                return row
        row = len(self._items)
        self.beginInsertRows(QModelIndex(), row, row)
        self._items.append(ShelfItem(card, enabled))
        self.endInsertRows()
        if enabled:
            self.stackChanged.emit()
        return row

    def remove_path(self, path: str) -> None:
        row = self.row_of(path)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self.endRemoveRows()
            self.stackChanged.emit()

    def set_base_family(self, family: str) -> None:
        self.base_family = family
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1), [MismatchRole])

    def item(self, row: int) -> ShelfItem:
        return self._items[row]

    def items(self) -> list[ShelfItem]:
        return list(self._items)

    def row_of(self, path: str) -> int | None:
        for row, item in enumerate(self._items):
            if Path(item.card.path) == Path(path):
                return row
        return None

    # ------------------------------------------------------------------ stack
    def set_enabled(self, row: int, on: bool) -> None:
        self.setData(self.index(row), on, EnabledRole)

    def set_weight(self, row: int, weight: float) -> None:
        self.setData(self.index(row), weight, WeightRole)

    def set_text_encoder_weight(self, row: int, weight: float | None) -> None:
        self.setData(self.index(row), weight, TextWeightRole)

    def stack_entries(self) -> list:
        """The stack in shelf order (every adapter, enabled or not; disabled ones change nothing)."""
        return [_entry(it) for it in self._items if it.enabled]

    def total_strength(self) -> float:
        """The sum of |strength| over the enabled styles: how hard the stack pushes the base model."""
        return round(sum(abs(it.weight) for it in self._items if it.enabled), 3)

    def apply_stack(self, entries: list) -> list[str]:
        """Restore toggles/weights from a stack (a preset or a PNG); returns names not on the shelf.

        The shelf keeps its order: the artist arranged it, and the enabled adapters' sum does not depend on it.
        """
        missing, wanted = [], []
        for entry in entries:
            row = self._find(entry)
            if row is None:
                missing.append(entry.name or Path(entry.path).name)
            else:
                wanted.append((row, entry))
        for item in self._items:
            item.enabled = False
        for row, entry in wanted:
            self._set_item(self._items[row], entry)
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))
        self.stackChanged.emit()
        return missing

    @staticmethod
    def _set_item(item: ShelfItem, entry) -> None:
        item.enabled = bool(entry.enabled)
        item.weight = float(entry.weight)
        te = getattr(entry, "text_encoder_weight", None)
        item.text_encoder_weight = None if te is None else float(te)

    def state(self) -> list[StackEntry]:
        """Every card in shelf order with its toggle and strengths (what a restart brings back)."""
        return [_entry(it) for it in self._items]

    def restore_state(self, entries: list) -> None:
        """Bring back a saved ``state()``: toggles, strengths and the order of the cards still on the shelf;
        cards new since then go after them."""
        position: dict[int, int] = {}
        for rank, entry in enumerate(entries):
            row = self._find(entry)
            if row is not None and row not in position:
                position[row] = rank
                self._set_item(self._items[row], entry)
        order = sorted(range(len(self._items)), key=lambda r: (position.get(r, len(entries)), r))
        self.beginResetModel()
        self._items = [self._items[r] for r in order]
        self.endResetModel()
        self.stackChanged.emit()

    def _find(self, entry) -> int | None:
        for row, item in enumerate(self._items):
            if entry.sha256 and item.card.sha256 and entry.sha256 == item.card.sha256:
                return row
        for row, item in enumerate(self._items):
            if entry.path and Path(entry.path) == Path(item.card.path):
                return row
        for row, item in enumerate(self._items):
            if entry.name and entry.name in (item.card.title, Path(item.card.path).stem):
                return row
        return None

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.card.title
        if role == CardRole:
            return item.card
        if role == EnabledRole:
            return item.enabled
        if role == WeightRole:
            return item.weight
        if role == TextWeightRole:
            return item.text_encoder_weight
        if role == MismatchRole:
            if item.card.problem:
                return item.card.problem
            if not families_compatible(item.card.family, self.base_family):
                a = FAMILY_LABELS.get(item.card.family, item.card.family)
                b = FAMILY_LABELS.get(self.base_family, self.base_family)
                return f"Made for {a}; the base model is {b}: it will not load or will do nothing."
            return ""
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{item.card.title}\n{item.card.path}"
        return None

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        item = self._items[index.row()]
        if role == EnabledRole:
            if item.enabled == bool(value):
                return True
            item.enabled = bool(value)
        elif role == WeightRole:
            weight = max(WEIGHT_MIN, min(WEIGHT_MAX, round(float(value), 3)))
            if item.weight == weight:
                return True
            item.weight = weight
        elif role == TextWeightRole:
            te = None if value is None else max(WEIGHT_MIN, min(WEIGHT_MAX, round(float(value), 3)))
            if item.text_encoder_weight == te:
                return True
            item.text_encoder_weight = te
        else:
            return False
        self.dataChanged.emit(index, index, [role])
        self.stackChanged.emit()
        return True

    def moveRows(self, src_parent: Index, src: int, count: int, dst_parent: Index, dst: int) -> bool:
        if count != 1 or src < 0 or src >= len(self._items) or dst < 0 or dst > len(self._items):
            return False
        if dst in (src, src + 1):
            return False
        if not self.beginMoveRows(QModelIndex(), src, src, QModelIndex(), dst):
            return False
        item = self._items.pop(src)
        self._items.insert(dst - 1 if dst > src else dst, item)
        self.endMoveRows()
        self.stackChanged.emit()
        return True

    def move(self, src: int, dst: int) -> bool:
        """Put row ``src`` at position ``dst`` (final index)."""
        return self.moveRows(QModelIndex(), src, 1, QModelIndex(), dst + 1 if dst > src else dst)


def _entry(item) -> StackEntry:
    """One shelf item as the stack entry the engine runs and the session stores."""
    return StackEntry(
        path=item.card.path,
        enabled=item.enabled,
        weight=item.weight,
        name=item.card.title,
        sha256=item.card.sha256,
        text_encoder_weight=item.text_encoder_weight,
    )
