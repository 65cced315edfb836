"""Typing a number into any box keeps every key (issue 10, item 1): the model's echo of the first key used to
rewrite the box's text ("0" → "0.00") so the rest of "0.5" was refused. Each box kind is driven with real key
clicks in a shown window, and the value is read from the view model, not from the box."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.helpers.gui import open_main_window, type_into

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def window(qtbot):
    from app.engine.facade import AdapterCard

    win = open_main_window(qtbot)
    te = AdapterCard(path="/shelf/te.safetensors", title="Te", sha256="te" * 8, has_text_encoder=True)
    win.shelf_vm.model.set_cards([te])
    win.tabs.setCurrentWidget(win.generate_tab)
    qtbot.waitExposed(win)
    return win


def test_shelf_card_strength_keeps_every_key(qtbot, window):
    card = window.generate_tab.shelf_panel.cards["/shelf/te.safetensors"]
    model = window.shelf_vm.model
    assert card.spin.value() == 1.0
    type_into(qtbot, card.spin, "0.5")
    assert model.item(0).weight == 0.5
    type_into(qtbot, card.spin, "1.5")  # from 0.50: the first key changes the value again
    assert model.item(0).weight == 1.5
    assert card.slider.value() == 150


def test_text_encoder_strength_keeps_every_key(qtbot, window):
    card = window.generate_tab.shelf_panel.cards["/shelf/te.safetensors"]
    assert card.text_spin.value() == 1.0  # follows the strength until set
    type_into(qtbot, card.text_spin, "0.25")
    assert window.shelf_vm.model.item(0).text_encoder_weight == 0.25


def test_generate_form_number_boxes_keep_every_key(qtbot, window):
    tab, params = window.generate_tab, window.generate_vm.params
    type_into(qtbot, tab.guidance, "4.5")
    type_into(qtbot, tab.steps, "35")
    type_into(qtbot, tab.width_box, "512")
    type_into(qtbot, tab.batch, "3")
    type_into(qtbot, tab.seed, "123456789")
    assert (params.guidance, params.steps, params.width, params.batch_count, params.seed) == (
        4.5,
        35,
        512,
        3,
        123456789,
    )
    # Typing inside the seed: the echo of the first key used to throw the cursor to the end.
    type_into(qtbot, tab.seed, "4242")
    tab.seed.setFocus()
    qtbot.keyClick(tab.seed, Qt.Key.Key_Home)
    qtbot.keyClick(tab.seed, Qt.Key.Key_Right)
    qtbot.keyClick(tab.seed, Qt.Key.Key_Right)
    qtbot.keyClicks(tab.seed, "77", delay=40)
    assert tab.seed.text() == "427742" and params.seed == 427742


def test_train_settings_form_number_boxes_keep_every_key(qtbot, window):
    window.tabs.setCurrentWidget(window.train_tab)
    form = window.train_tab.form
    qtbot.mouseClick(form.advanced_button, Qt.MouseButton.LeftButton)
    type_into(qtbot, form.editors["max_grad_norm"], "2.5")  # a float box showing 1.000
    type_into(qtbot, form.editors["steps"], "450")
    assert window.train_vm.value("max_grad_norm") == 2.5
    assert window.train_vm.value("steps") == 450


def test_bake_dialog_rank_box_keeps_every_key(qtbot):
    from app.gui.dialogs import BakeDialog

    dialog = BakeDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    type_into(qtbot, dialog.rank_box, "16")
    assert dialog.rank() == 16
