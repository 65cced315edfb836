"""Every text colour reads at WCAG AA (4.5:1) in both themes (issue 10, polish): the palettes' text roles on the
backgrounds they are drawn on, and the fixed colours of banners, badges and the primary button."""

from __future__ import annotations

import pytest


def luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula_matches_wcag_reference_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_every_text_colour_reaches_4_5_to_1(qapp, dark):
    from PySide6.QtGui import QPalette

    from app.gui import theme

    palette = theme.dark_palette() if dark else theme.light_palette()
    R = QPalette.ColorRole

    def colour(role):
        return palette.color(QPalette.ColorGroup.Active, role).name()

    pairs = {
        "window text": (R.WindowText, R.Window),
        "text in fields and cards": (R.Text, R.Base),
        "button text": (R.ButtonText, R.Button),
        "muted text on the window (✓ ready, counts)": (R.PlaceholderText, R.Window),
        "muted text on cards": (R.PlaceholderText, R.Base),
        "the greyed-out Generate button": (R.WindowText, R.Mid),
        "badge text": (R.WindowText, R.Mid),
        "selected text": (R.HighlightedText, R.Highlight),
        "tooltips": (R.ToolTipText, R.ToolTipBase),
        "links": (R.Link, R.Base),
    }
    checked = {name: (colour(fg), colour(bg)) for name, (fg, bg) in pairs.items()}
    checked |= theme.FIXED_PAIRS
    checked["stack strength hint"] = (theme.WARNING_TEXT[dark], colour(R.Window))
    low = {name: round(contrast(fg, bg), 2) for name, (fg, bg) in checked.items() if contrast(fg, bg) < 4.5}
    assert not low, f"below 4.5:1: {low}"


def test_the_theme_applied_is_the_one_checked(qapp):
    from PySide6.QtGui import QPalette

    from app.gui import theme

    try:
        for dark in (True, False):
            assert theme.apply_theme(qapp, "dark" if dark else "light") is dark
            expected = theme.dark_palette() if dark else theme.light_palette()
            role = QPalette.ColorRole.PlaceholderText
            assert qapp.palette().color(role) == expected.color(role)
            assert theme.WARNING_TEXT[dark] in qapp.styleSheet()
    finally:
        theme.apply_theme(qapp, "dark")
