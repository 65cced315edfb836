"""The live shelf: folder changes (``FolderWatcher``) turned into card updates on the shelf model.

- a new adapter file gets a card (read on a pool thread, header and hashes only);
- a changed file (new weights: new tensor hash) gets a fresh card (thumbnail, metadata, hash), and its
  loaded weights are dropped from the generator before the next image (``facade.adapter_files_changed``),
  so an image never mixes old and new weights;
- a vanished file keeps its card, marked as gone; if it is in the stack it stays there and generation
  leaves it out with a warning;
- stack files (``*.stack.json``) that appear or change are announced in the status line.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.engine import facade
from app.gui.background import run_in_background
from app.gui.folder_watch import FolderWatcher


class LiveShelf(QObject):
    cardsUpdated = Signal(list)  # paths whose cards were added or refreshed from disk

    def __init__(self, vm, *, poll_ms: int = 3000, settle_ms: int = 700) -> None:
        super().__init__(vm)
        self.vm = vm
        self.watcher = FolderWatcher(self, poll_ms=poll_ms, settle_ms=settle_ms)
        self.watcher.filesChanged.connect(self._files_changed)
        self.follow()

    def follow(self) -> None:
        """Watch the shelf's folders as they are now (call after the folder list changed)."""
        self.watcher.set_folders(facade.shelf_folders())

    def start(self) -> None:
        self.watcher.start()

    def _files_changed(self, added: list[str], changed: list[str], removed: list[str]) -> None:
        stacks = [Path(p).name for p in [*added, *changed] if facade.is_stack_file(p)]
        if stacks:  # listed under File → Stack files on the shelf
            self.vm.message.emit(f"Stack file on the shelf: {', '.join(stacks)}")
        adapters = [p for p in [*added, *changed] if not facade.is_stack_file(p)]
        gone = [p for p in removed if not facade.is_stack_file(p)]
        if changed or gone:
            facade.adapter_files_changed([*changed, *gone])
        model = self.vm.model
        for path in gone:
            row = model.row_of(path)
            if row is not None:
                model.add_card(facade.missing_card(model.item(row).card))
        if gone:
            self.vm.message.emit(f"Gone from the shelf folder: {', '.join(Path(p).name for p in gone)}")
        if adapters:
            run_in_background(
                lambda: facade.adapter_cards(adapters), lambda cards: self._cards(cards, changed), lambda exc: None
            )  # a file that cannot be read gets a card with the reason

    def _cards(self, cards: list, changed: list[str]) -> None:
        new, updated = [], []
        for card in cards:
            if self._moved_here(card):
                continue
            (updated if card.path in changed or self.vm.model.row_of(card.path) is not None else new).append(card)
            self.vm.model.add_card(card)
        if new:
            self.vm.message.emit(f"New on the shelf: {', '.join(c.title for c in new)}")
        if updated:
            self.vm.message.emit(f"Updated on the shelf: {', '.join(c.title for c in updated)}")
        self.cardsUpdated.emit([c.path for c in cards])

    def _moved_here(self, card) -> bool:
        """A renamed or moved file: it vanished from one path and the same weights appeared at another. The new
        card takes the gone one's place, toggle and strengths, so the stack carries on as it was."""
        model = self.vm.model
        if not card.sha256 or model.row_of(card.path) is not None:
            return False
        for row, item in enumerate(model.items()):
            if item.card.missing and item.card.sha256 == card.sha256:
                model.remove_path(item.card.path)
                model.move(model.add_card(card), row)
                model.set_weight(row, item.weight)
                model.set_text_encoder_weight(row, item.text_encoder_weight)
                model.set_enabled(row, item.enabled)
                self.vm.message.emit(f"{Path(item.card.path).name} moved to {card.path}")
                return True
        return False
