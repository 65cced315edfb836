"""Remembered preferences (base model, theme, last folders) in one QSettings store.

An INI file under the user's config folder on every platform, so tests can point it at a temporary
folder with ``QSettings.setPath`` (see tests/test_gui_*.py) and never touch a real user's settings.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "StyleShelf"
APPLICATION = "StyleShelf"


def app_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def get_str(key: str, default: str = "") -> str:
    value = app_settings().value(key, default)
    return str(value) if value is not None else default


def set_value(key: str, value: object) -> None:
    store = app_settings()
    store.setValue(key, value)
    store.sync()
