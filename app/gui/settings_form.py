"""A form built from a config dataclass's ``configbase.Setting`` records.

help → tooltip, minimum/maximum → spin-box limits, choices → combo box, ``advanced`` → a collapsible
"Advanced" section. The form holds no state: it reads and writes a view model through ``get``/``set``
callables and refreshes when the model says a value changed.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui.number_box import show_value

INT_LIMIT = 2_000_000_000


class SettingsForm(QWidget):
    def __init__(
        self,
        settings: list[Any],
        get: Callable[[str], Any],
        set: Callable[[str, Any], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._get, self._set = get, set
        self.editors: dict[str, QWidget] = {}
        self._updating = False
        basic = QFormLayout()
        # A disclosure button rather than a checkable group box: nothing to read until it is opened.
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setToolTip("Settings most styles never need to change")
        self.advanced_panel = QWidget()
        advanced = QFormLayout(self.advanced_panel)
        advanced.setContentsMargins(12, 0, 0, 0)
        self.advanced_panel.setVisible(False)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        for s in settings:
            editor = self._make_editor(s)
            editor.setToolTip(s.help)
            editor.setObjectName(f"setting_{s.name}")
            self.editors[s.name] = editor
            (advanced if s.advanced else basic).addRow(s.label, editor)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(basic)
        layout.addWidget(self.advanced_button)
        layout.addWidget(self.advanced_panel)
        self.advanced_button.setVisible(advanced.rowCount() > 0)
        self.refresh()

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced_panel.setVisible(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    # ------------------------------------------------------------------ editors
    def _make_editor(self, s: Any) -> QWidget:
        tp, optional = s.kind, s.optional
        name = s.name
        if s.choices:
            combo = QComboBox()
            for choice in s.choices:
                combo.addItem(str(choice), choice)
            combo.currentIndexChanged.connect(lambda _i, c=combo: self._changed(name, c.currentData()))
            return combo
        if tp is bool:
            check = QCheckBox()
            check.toggled.connect(lambda on: self._changed(name, on))
            return check
        if tp is int and not optional:
            spin = QSpinBox()
            spin.setRange(
                int(s.minimum) if s.minimum is not None else -INT_LIMIT,
                int(s.maximum) if s.maximum is not None else INT_LIMIT,
            )
            if s.step:
                spin.setSingleStep(int(s.step))
            spin.setAccelerated(True)
            spin.valueChanged.connect(lambda v: self._changed(name, int(v)))
            return spin
        if tp is float and not optional:
            spin = QDoubleSpinBox()
            small = s.default not in (None, 0) and abs(float(s.default)) < 0.01
            # Learning rates live around 1e-4: show enough decimals and step by a fraction of the default.
            spin.setDecimals(7 if small else 3)
            spin.setRange(
                float(s.minimum) if s.minimum is not None else -1e9, float(s.maximum) if s.maximum is not None else 1e9
            )
            spin.setSingleStep(s.step or (10 ** math.floor(math.log10(abs(float(s.default)))) if small else 0.05))
            spin.valueChanged.connect(lambda v: self._changed(name, float(v)))
            return spin
        line = QLineEdit()
        if optional:
            line.setPlaceholderText("auto")
        if typing.get_origin(tp) is list:
            line.setPlaceholderText("one per line, separated by |")
        line.editingFinished.connect(lambda ln=line, st=s: self._typed(st, ln))
        return line

    def _typed(self, s: Any, line: QLineEdit) -> None:
        try:
            value = facade.parse_setting_value(line.text(), s)  # the CLI's and TOML's parser
        except facade.UserError:
            self.refresh(s.name)  # not a value of this setting: show the one the model keeps
            return
        self._changed(s.name, value)

    def _changed(self, name: str, value: Any) -> None:
        if not self._updating:
            self._set(name, value)

    # ------------------------------------------------------------------ model → widgets
    def refresh(self, name: str | None = None) -> None:
        self._updating = True
        try:
            for key, editor in self.editors.items():
                if name is None or key == name:
                    self._show(editor, self._get(key))
        finally:
            self._updating = False

    @staticmethod
    def _show(editor: QWidget, value: Any) -> None:
        if isinstance(editor, QComboBox):
            i = editor.findData(value)
            editor.setCurrentIndex(max(i, 0))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            if value is not None:
                show_value(editor, value)
        elif isinstance(editor, QLineEdit):
            if isinstance(value, list):
                editor.setText(" | ".join(map(str, value)))
            else:
                editor.setText("" if value is None else str(value))
