"""A dark theme that follows the system: Fusion style with a dark or light palette.

``mode`` is "system" (dark unless the platform says light), "dark" or "light"; the app re-applies it
when the system scheme changes. Accent colours are shared with the custom widgets (cards, badges).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#7c9cff"
WARNING = "#e0a03a"
DANGER = "#e05a5a"
OK = "#5ac18e"

ICONS = Path(__file__).resolve().parents[2] / "assets" / "icons"

_STYLE = """
QToolTip { padding: 4px; }
QFrame#ErrorBanner { border-radius: 6px; background: #5a2a2a; }
QFrame#ErrorBanner QLabel { color: #ffecec; }
QFrame#InfoBanner { border-radius: 6px; background: #2d3f5c; }
QFrame#ShelfCard { border-radius: 8px; border: 1px solid palette(mid); background: palette(base); }
QFrame#ShelfCard[enabledState="true"] { border: 1px solid %(accent)s; }
QLabel#Badge { border-radius: 4px; padding: 1px 6px; font-size: 11px; background: palette(mid); }
QLabel#Badge[warn="true"] { background: %(warning)s; color: black; }
QLabel#Heading { font-size: 15px; font-weight: 600; }
QLabel#Muted { color: palette(placeholder-text); }
QFrame#DropHint { border: 2px dashed palette(mid); border-radius: 10px; }
QPushButton#Primary { background: %(accent)s; color: black; font-weight: 600; padding: 6px 16px;
                      border-radius: 4px; }
QPushButton#Primary:disabled { background: palette(mid); color: palette(placeholder-text); }
QCheckBox::indicator { width: 14px; height: 14px; border: 1px solid #8a8d96; border-radius: 3px;
                       background: palette(base); }
QCheckBox::indicator:hover { border-color: %(accent)s; }
QCheckBox::indicator:checked { background: %(accent)s; border-color: %(accent)s; image: url(%(check)s); }
QCheckBox::indicator:disabled { border-color: palette(mid); }
""" % {"accent": ACCENT, "warning": WARNING, "check": (ICONS / "check.svg").as_posix()}


def system_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme()
    # Unknown (offscreen, many X11 desktops) → dark: artists judge colours best on a dark surround.
    return scheme != Qt.ColorScheme.Light


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2a2b2f"), QColor("#e6e6e6")
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, QPalette.ColorRole.Window, window)
        p.setColor(group, QPalette.ColorRole.WindowText, text)
        p.setColor(group, QPalette.ColorRole.Base, base)
        p.setColor(group, QPalette.ColorRole.AlternateBase, QColor("#26272b"))
        p.setColor(group, QPalette.ColorRole.Text, text)
        p.setColor(group, QPalette.ColorRole.Button, QColor("#34363b"))
        p.setColor(group, QPalette.ColorRole.ButtonText, text)
        p.setColor(group, QPalette.ColorRole.ToolTipBase, QColor("#34363b"))
        p.setColor(group, QPalette.ColorRole.ToolTipText, text)
        p.setColor(group, QPalette.ColorRole.Highlight, QColor(ACCENT))
        p.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#101010"))
        p.setColor(group, QPalette.ColorRole.Mid, QColor("#44464d"))
        p.setColor(group, QPalette.ColorRole.Dark, QColor("#18191b"))
        p.setColor(group, QPalette.ColorRole.Light, QColor("#4a4c53"))
        p.setColor(group, QPalette.ColorRole.PlaceholderText, QColor("#9a9ca3"))
        p.setColor(group, QPalette.ColorRole.Link, QColor(ACCENT))
        p.setColor(group, QPalette.ColorRole.BrightText, QColor(DANGER))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(disabled, role, QColor("#6f7178"))
    p.setColor(disabled, QPalette.ColorRole.Button, QColor("#2e3034"))
    p.setColor(disabled, QPalette.ColorRole.Base, QColor("#232427"))
    return p


def apply_theme(app: QApplication, mode: str = "system") -> bool:
    """Apply the theme; returns True when the dark palette is in use."""
    app.setStyle("Fusion")
    dark = mode == "dark" or (mode == "system" and system_prefers_dark())
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    app.setStyleSheet(_STYLE)
    return dark
