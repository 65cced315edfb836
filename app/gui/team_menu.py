"""File-menu actions for working as a team: your author name, stack files (open, save, the list).

The actions work on the shelf view model (``open_stack_file`` / ``save_stack_file`` are plain functions
that tests call directly); ``add_team_actions`` puts them in the window's File menu.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QLineEdit, QMenu, QWidget

from app.engine import facade
from app.gui.errors import describe_exception

STACK_FILTER = "StyleShelf stacks (*.stack.json)"


def open_stack_file(vm, path: str) -> list[str]:
    """Set the shelf's stack from a stack file; returns the notes shown (older versions, missing entries)."""
    try:
        title, entries, notes = facade.open_stack_file(path)
    except Exception as exc:  # noqa: BLE001 - shown, never fatal
        vm.errorRaised.emit(*describe_exception(exc))
        return []
    vm.model.apply_stack(entries)
    vm.message.emit(f"Stack “{title}” set ({len(entries)} styles)")
    if notes:
        vm.errorRaised.emit(notes[0] if len(notes) == 1 else f"{len(notes)} notes on stack “{title}”: {notes[0]}",
                            "\n".join(notes))  # fmt: skip
    return notes


def save_stack_file(vm, path: str, description: str = "") -> Path | None:
    """Write the current stack (the enabled styles, in order) as ``path`` (``NAME.stack.json``)."""
    entries = vm.model.stack_entries()
    if not entries:
        vm.errorRaised.emit("Turn on at least one style to save a stack file.", "")
        return None
    target = Path(path)
    title = target.name[: -len(".stack.json")] if facade.is_stack_file(target.name) else target.stem
    try:
        written = facade.save_stack_file(str(target.parent), title, entries, description)
    except Exception as exc:  # noqa: BLE001
        vm.errorRaised.emit(*describe_exception(exc))
        return None
    vm.message.emit(f"Saved stack file {written.name}")
    return written


def set_author(vm, name: str) -> None:
    try:
        clean = facade.set_author_name(name)
    except Exception as exc:  # noqa: BLE001
        vm.errorRaised.emit(*describe_exception(exc))
        return
    vm.message.emit(f"New styles are signed “{clean}”" if clean else "New styles carry no author name")


def add_team_actions(window: QWidget, menu: QMenu, vm) -> None:
    """Your name…, Open stack file…, Save stack as file…, and a submenu of the shelf's stack files."""

    def ask_author() -> None:
        name, ok = QInputDialog.getText(window, "Your name", "Written as the author into styles you train, bake "
                                        "or edit:", QLineEdit.EchoMode.Normal, facade.get_author_name())  # fmt: skip
        if ok:
            set_author(vm, name)

    def ask_open() -> None:
        path, _ = QFileDialog.getOpenFileName(window, "Open stack file", _default_folder(vm), STACK_FILTER)
        if path:
            open_stack_file(vm, path)

    def ask_save() -> None:
        path, _ = QFileDialog.getSaveFileName(window, "Save stack as file", _default_folder(vm), STACK_FILTER)
        if path:
            if not facade.is_stack_file(path):
                path = str(Path(path).with_suffix("")) + ".stack.json"
            save_stack_file(vm, path)

    menu.addAction("Your name (author)…").triggered.connect(lambda _=False: ask_author())
    menu.addAction("Open stack file…").triggered.connect(lambda _=False: ask_open())
    menu.addAction("Save stack as file…").triggered.connect(lambda _=False: ask_save())
    listed = menu.addMenu("Stack files on the shelf")

    def fill() -> None:
        listed.clear()
        files = facade.list_stack_files()
        for path in files:
            act = listed.addAction(f"{Path(path).name[: -len('.stack.json')]}  —  {Path(path).parent.name}")
            act.setToolTip(path)
            act.triggered.connect(lambda _=False, p=path: open_stack_file(vm, p))
        if not files:
            listed.addAction("(none: save one into a shared folder)").setEnabled(False)

    listed.aboutToShow.connect(fill)


def _default_folder(vm) -> str:
    # A team share when there is one: that is where a house style is meant to live.
    return vm.extra_folders[0] if vm.extra_folders else str(facade.adapters_dir())
