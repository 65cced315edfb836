"""ShelfViewModel: the shelf's actions (scan, import, export, remove, edit, presets, bake) over ShelfModel.

File work that can take a while (scanning folders, hashing imports) runs on a pool thread; results land
back in the model on the UI thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.engine import facade
from app.gui import session
from app.gui import settings as prefs
from app.gui.background import run_in_background
from app.gui.errors import describe_exception
from app.gui.shelf_live import LiveShelf
from app.gui.shelf_model import ShelfModel


class ShelfViewModel(QObject):
    refreshed = Signal()
    imported = Signal(list)  # paths now on the shelf
    message = Signal(str)
    errorRaised = Signal(str, str)
    skippedChanged = Signal(list)  # [facade.SkippedAdapterFile]: shelf-folder files that are not adapters

    EXTRA_FOLDERS_KEY = "shelf/extra_folders"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = ShelfModel(self)
        self.busy = 0
        self.skipped: list = []
        self.extra_folders: list[str] = _load_folders(prefs.get_str(self.EXTRA_FOLDERS_KEY))
        facade.set_extra_adapter_folders(self.extra_folders)
        self.live = LiveShelf(self)  # watches the shelf folders once the first refresh ran
        # The last session's toggles, strengths and order, applied once the first scan has listed the cards.
        self._saved_state: list | None = session.load_shelf()

    def save_session(self) -> None:
        if self._saved_state is None:  # never before the first scan: that would forget the saved stack
            session.save_shelf(self.model.state())

    def set_extra_folders(self, folders: list[str]) -> None:
        """Remember the extra adapter folders (a team share, another tool's LoRA folder) and rescan."""
        self.extra_folders = list(dict.fromkeys(f for f in folders if f.strip()))  # keep order, drop repeats
        prefs.set_value(self.EXTRA_FOLDERS_KEY, json.dumps(self.extra_folders))
        facade.set_extra_adapter_folders(self.extra_folders)
        self.live.follow()
        self.refresh()

    # ------------------------------------------------------------------ scanning and importing
    def refresh(self) -> None:
        self.live.start()
        self.busy += 1
        run_in_background(facade.list_shelf, self._listed, self._failed)

    def _listed(self, listing: facade.ShelfListing) -> None:
        self.skipped = listing.skipped
        self.skippedChanged.emit(listing.skipped)
        self._scanned(listing.cards)

    def _scanned(self, cards: list) -> None:
        self.busy -= 1
        self.model.set_cards(cards)
        if self._saved_state is not None:
            saved, self._saved_state = self._saved_state, None
            self.model.restore_state(saved)
        self.refreshed.emit()

    def add_adapter(self, path: str, *, enabled: bool = False) -> None:
        """A freshly trained adapter: read its header and put its card on the shelf."""
        try:
            card = facade.adapter_card(path)
        except Exception as exc:  # noqa: BLE001 - any refusal is shown, the shelf stays usable
            self.errorRaised.emit(*describe_exception(exc))
            return
        self.model.add_card(card, enabled=enabled)
        self.imported.emit([card.path])

    def import_files(self, files: list[str]) -> None:
        self.busy += 1
        run_in_background(lambda: facade.import_adapters(files), self._imported, self._failed)

    def _imported(self, result: tuple[list, list[str]]) -> None:
        self.busy -= 1
        cards, problems = result
        for card in cards:
            self.model.add_card(card)
        if cards:
            self.message.emit(f"Imported {', '.join(c.title for c in cards)}")
        if problems:
            first = problems[0].splitlines()[0]  # the reason; technical lines wait under "Details"
            self.errorRaised.emit(f"{len(problems)} file(s) were not imported: {first}", "\n".join(problems))
        self.imported.emit([c.path for c in cards])

    def _failed(self, exc: BaseException) -> None:
        self.busy -= 1
        self.errorRaised.emit(*describe_exception(exc))

    # ------------------------------------------------------------------ per-card actions
    def _guard(self, fn, *args, **kwargs) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal
            self.errorRaised.emit(*describe_exception(exc))
            return None

    def export(self, path: str, dest: str) -> None:
        if self._guard(facade.export_adapter, path, dest) is not None or Path(dest).is_file():
            self.message.emit(f"Exported to {dest}")

    def remove(self, path: str) -> None:
        self._guard(facade.remove_adapter, path)
        if not Path(path).exists():
            self.model.remove_path(path)
            self.message.emit(f"Removed {Path(path).name}")

    def edit(self, path: str, *, title: str, trigger: str, thumbnail_image: str | None = None) -> None:
        card = self._guard(
            facade.edit_adapter_metadata, path, title=title, trigger=trigger, thumbnail_image=thumbnail_image
        )
        if card is not None:
            self.model.add_card(card)

    # ------------------------------------------------------------------ presets and bake
    def preset_names(self) -> list[str]:
        return self._guard(facade.list_stack_presets) or []

    def save_preset(self, name: str) -> None:
        stack = facade.Stack(self.model.stack_entries())
        self._guard(facade.save_stack_preset, name, stack)
        self.message.emit(f"Saved stack preset “{name}”")

    def load_preset(self, name: str) -> None:
        stack = self._guard(facade.load_stack_preset, name)
        if stack is None:
            return
        missing = self.model.apply_stack(list(stack.entries))
        if missing:
            self.errorRaised.emit(f"Preset “{name}” uses adapters not on the shelf: {', '.join(missing)}", "")

    def bake(self, out: str, rank: int | None) -> None:
        stack = facade.Stack(self.model.stack_entries())
        if not stack.entries:
            self.errorRaised.emit("Turn on at least one adapter to bake a stack.", "")
            return
        self.busy += 1
        run_in_background(lambda: facade.bake_stack(stack, out, rank), self._baked, self._failed)

    def _baked(self, card) -> None:
        self.busy -= 1
        self.model.add_card(card)
        self.message.emit(f"Baked the stack into {Path(card.path).name}")


def _load_folders(stored: str) -> list[str]:
    try:
        value = json.loads(stored) if stored else []
    except ValueError:
        return []
    return [str(f) for f in value] if isinstance(value, list) else []
