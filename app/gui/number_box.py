"""Number boxes that keep what the person types.

Every spin box in the app reports each keystroke (keyboard tracking stays on, so Ctrl+Return right after
typing uses the new number), the view model stores the value, and the view shows the model's value back.
Showing it back with a plain ``setValue`` rewrites the box's text while the person is still typing: after
the first key of ``0.5`` the box reads ``0.00`` with the cursor at the end, so ``.`` and ``5`` are refused
and the value stays 0. ``show_value`` is the one way views put a model value into a box: it leaves the box
alone when it already holds that value, which is always the case for a value that came from the box.
"""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox


def holds(box: QAbstractSpinBox, value: float) -> bool:
    """True when the box's value is ``value`` as the box would show it (rounded to its decimals)."""
    if isinstance(box, QDoubleSpinBox):
        return round(box.value(), box.decimals()) == round(float(value), box.decimals())
    if isinstance(box, QSpinBox):
        return box.value() == int(value)
    raise TypeError(f"not a number box: {type(box).__name__}")


def show_value(box: QSpinBox | QDoubleSpinBox, value: float) -> None:
    """Show a model value in a box without disturbing text the person is typing."""
    if not holds(box, value):
        box.setValue(value)


def strength_box(tooltip: str, minimum: float, maximum: float, *, step: float = 0.05) -> QDoubleSpinBox:
    """A two-decimal strength box (shelf cards: the style's and its text encoder's strength)."""
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setToolTip(tooltip)
    return box


def fit_to_setting(box: QSpinBox | QDoubleSpinBox, setting, *, auto: str = "") -> None:
    """Range, step and tooltip of a hand-placed box from its config setting (``configbase.Setting``), so the
    form cannot drift from the config the engine checks. ``auto``: for an optional setting (None = automatic,
    e.g. the base model's own size), the text the box shows at 0, below the setting's minimum."""
    low, high = setting.minimum, setting.maximum
    if auto:
        low = 0  # the box's "auto" value; the view maps anything below the minimum to None
        box.setSpecialValueText(auto)
    if isinstance(box, QSpinBox):
        box.setRange(int(low), int(high))
    else:
        box.setRange(float(low), float(high))
    if setting.step:
        box.setSingleStep(setting.step)
    box.setToolTip(setting.help)
