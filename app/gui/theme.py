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
# Text in the warning colour (the shelf's high-strength hint): the badge orange is too light on a light window.
WARNING_TEXT = {True: WARNING, False: "#8a5a00"}  # dark theme?, light theme?
# Fixed colours drawn on their own backgrounds whatever the theme (foreground, background); the contrast test
# (tests/test_gui_theme.py) checks every pair here and the palettes' text roles against WCAG AA (4.5:1).
FIXED_PAIRS = {
    "error banner": ("#ffecec", "#5a2a2a"),
    "info banner": ("#eef3ff", "#2d3f5c"),
    "warning badge": ("#000000", WARNING),
    "primary button": ("#000000", ACCENT),
}

ICONS = Path(__file__).resolve().parents[2] / "assets" / "icons"

_STYLE = """
QToolTip { padding: 4px; }
QFrame#ErrorBanner { border-radius: 6px; background: #5a2a2a; }
QFrame#ErrorBanner QLabel { color: #ffecec; }
QFrame#InfoBanner { border-radius: 6px; background: #2d3f5c; }
QFrame#InfoBanner QLabel { color: #eef3ff; }
QFrame#ShelfCard { border-radius: 8px; border: 1px solid palette(mid); background: palette(base); }
QFrame#ShelfCard[enabledState="true"] { border: 1px solid %(accent)s; }
QLabel#Badge { border-radius: 4px; padding: 1px 6px; font-size: 11px; background: palette(mid); }
QLabel#Badge[warn="true"] { background: %(warning)s; color: black; }
QLabel#Heading { font-size: 15px; font-weight: 600; }
QLabel#Muted { color: palette(placeholder-text); }
QLabel#Muted[warn="true"] { color: %(warning_text)s; }
QFrame#DropHint { border: 2px dashed palette(mid); border-radius: 10px; }
QPushButton#Primary { background: %(accent)s; color: black; font-weight: 600; padding: 6px 16px;
                      border-radius: 4px; }
QPushButton#Primary:disabled { background: palette(mid); color: palette(window-text); }
QCheckBox::indicator { width: 14px; height: 14px; border: 1px solid #8a8d96; border-radius: 3px;
                       background: palette(base); }
QCheckBox::indicator:hover { border-color: %(accent)s; }
QCheckBox::indicator:checked { background: %(accent)s; border-color: %(accent)s; image: url(%(check)s); }
QCheckBox::indicator:disabled { border-color: palette(mid); }
"""


def style_sheet(dark: bool) -> str:
    return _STYLE % {
        "accent": ACCENT,
        "warning": WARNING,
        "warning_text": WARNING_TEXT[dark],
        "check": (ICONS / "check.svg").as_posix(),
    }


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


def light_palette() -> QPalette:
    """Fusion's light palette with darker secondary text and links: its grey hints measured about 3.5:1."""
    p = QPalette()
    window, base, text = QColor("#f3f3f5"), QColor("#ffffff"), QColor("#1d1d1f")
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        p.setColor(group, QPalette.ColorRole.Window, window)
        p.setColor(group, QPalette.ColorRole.WindowText, text)
        p.setColor(group, QPalette.ColorRole.Base, base)
        p.setColor(group, QPalette.ColorRole.AlternateBase, QColor("#f7f7f9"))
        p.setColor(group, QPalette.ColorRole.Text, text)
        p.setColor(group, QPalette.ColorRole.Button, QColor("#e4e5e9"))
        p.setColor(group, QPalette.ColorRole.ButtonText, text)
        p.setColor(group, QPalette.ColorRole.ToolTipBase, QColor("#ffffe8"))
        p.setColor(group, QPalette.ColorRole.ToolTipText, text)
        p.setColor(group, QPalette.ColorRole.Highlight, QColor("#3558c8"))
        p.setColor(group, QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
        p.setColor(group, QPalette.ColorRole.Mid, QColor("#c4c6cc"))
        p.setColor(group, QPalette.ColorRole.Dark, QColor("#9c9ea5"))
        p.setColor(group, QPalette.ColorRole.Light, QColor("#ffffff"))
        p.setColor(group, QPalette.ColorRole.Midlight, QColor("#e9eaee"))
        p.setColor(group, QPalette.ColorRole.Shadow, QColor("#76787e"))
        p.setColor(group, QPalette.ColorRole.PlaceholderText, QColor("#5c5e66"))
        p.setColor(group, QPalette.ColorRole.Link, QColor("#2a4fc0"))
        p.setColor(group, QPalette.ColorRole.BrightText, QColor("#b00020"))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(disabled, role, QColor("#9a9ca3"))
    p.setColor(disabled, QPalette.ColorRole.Button, QColor("#ecedf0"))
    p.setColor(disabled, QPalette.ColorRole.Base, QColor("#f3f3f5"))
    return p


def apply_theme(app: QApplication, mode: str = "system") -> bool:
    """Apply the theme; returns True when the dark palette is in use."""
    app.setStyle("Fusion")
    dark = mode == "dark" or (mode == "system" and system_prefers_dark())
    app.setPalette(dark_palette() if dark else light_palette())
    app.setStyleSheet(style_sheet(dark))
    return dark
