"""Save dialogs that open where the artist saved last, else in their Pictures folder (never the app's install
folder, which is where a bare file name put them)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

from app.gui import settings as prefs

LAST_SAVE_FOLDER_KEY = "dialogs/last_save_folder"


def start_folder() -> Path:
    last = prefs.get_str(LAST_SAVE_FOLDER_KEY)
    if last and Path(last).is_dir():
        return Path(last)
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    if pictures and Path(pictures).is_dir():
        return Path(pictures)
    return Path.home()


def ask_save_path(parent: QWidget | None, title: str, file_name: str, filters: str) -> str:
    """Ask where to save ``file_name``; remembers the chosen folder for the next save. "" when cancelled."""
    dest, _ = QFileDialog.getSaveFileName(parent, title, str(start_folder() / Path(file_name).name), filters)
    if dest:
        prefs.set_value(LAST_SAVE_FOLDER_KEY, str(Path(dest).parent))
    return dest
