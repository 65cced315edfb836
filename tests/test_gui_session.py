"""A restart brings the session back (issue 10, item 5): the Generate form, the seed lock, the shelf's stack
(toggles, strengths, order) and the recent prompts. Everything is set through the widgets as a person does, the
window is closed, and a new window (new view models, same settings store) shows it all again."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.helpers.gui import open_main_window, type_into

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


def open_window(qtbot):
    win = open_main_window(qtbot, generate_tab_with_shelf=True)
    assert win.shelf_vm.model.rowCount() >= 3
    return win


def shelf_state(win):
    return [(it.card.title, it.enabled, it.weight, it.text_encoder_weight) for it in win.shelf_vm.model.items()]


def test_generate_form_and_shelf_stack_survive_a_restart(qtbot):
    win = open_window(qtbot)
    tab = win.generate_tab
    qtbot.keyClicks(tab.prompt, "a lighthouse in fog")
    qtbot.keyClicks(tab.negative, "blurry")
    type_into(qtbot, tab.seed, "4242")
    qtbot.mouseClick(tab.lock, Qt.MouseButton.LeftButton, pos=tab.lock.rect().center())
    type_into(qtbot, tab.steps, "33")
    type_into(qtbot, tab.guidance, "5.5")
    type_into(qtbot, tab.width_box, "320")
    type_into(qtbot, tab.height_box, "448")
    tab.sampler.setFocus()
    qtbot.keyClick(tab.sampler, Qt.Key.Key_End)  # the last sampler in the list
    sampler = tab.sampler.currentText()
    assert sampler != tab.sampler.itemText(0)
    # The shelf: move the last card to the top, switch two on, set their strengths.
    model = win.shelf_vm.model
    model.move(model.rowCount() - 1, 0)
    panel = tab.shelf_panel
    first, second = (panel.cards[model.item(r).card.path] for r in (0, 1))
    qtbot.mouseClick(first.toggle, Qt.MouseButton.LeftButton, pos=first.toggle.rect().center())
    qtbot.mouseClick(second.toggle, Qt.MouseButton.LeftButton, pos=second.toggle.rect().center())
    type_into(qtbot, first.spin, "0.6")
    type_into(qtbot, second.spin, "-0.3")
    expected = shelf_state(win)
    assert expected[0][1:3] == (True, 0.6) and expected[1][1:3] == (True, -0.3)
    win.close()

    again = open_window(qtbot)
    t2, p = again.generate_tab, again.generate_vm.params
    assert t2.prompt.toPlainText() == "a lighthouse in fog" and t2.negative.toPlainText() == "blurry"
    assert (t2.seed.value(), t2.lock.isChecked(), again.generate_vm.seed_locked) == (4242, True, True)
    assert (t2.steps.value(), t2.guidance.value(), t2.width_box.value(), t2.height_box.value()) == (33, 5.5, 320, 448)
    assert (p.steps, p.guidance, p.width, p.height, p.sampler) == (33, 5.5, 320, 448, sampler)
    assert t2.sampler.currentText() == sampler
    assert shelf_state(again) == expected
    card = t2.shelf_panel.cards[again.shelf_vm.model.item(0).card.path]
    assert card.toggle.isChecked() and card.spin.value() == 0.6


def test_a_damaged_session_is_ignored(qtbot):
    from app.gui import settings as prefs

    prefs.set_value("session/generate", '{"steps": "many", "guidance": true, "prompt": 3, "sampler": "nope"}')
    prefs.set_value("session/shelf", "[1, 2")
    win = open_window(qtbot)
    p = win.generate_vm.params
    assert (p.steps, p.guidance, p.prompt) == (20, 7.0, "")
    assert p.sampler == win.generate_tab.sampler.itemText(0)
    assert not any(it.enabled for it in win.shelf_vm.model.items())


def test_recent_prompts_are_one_click_away_after_a_restart(qtbot):
    from app.gui import session

    for prompt in ("a red fox", "a blue whale", "a red fox"):
        session.remember_prompt(prompt)
    win = open_window(qtbot)
    tab = win.generate_tab
    assert win.generate_vm.prompt_history == ["a red fox", "a blue whale"]
    tab._fill_recent_menu()
    actions = tab.recent_menu.actions()
    assert [a.text() for a in actions] == ["a red fox", "a blue whale"]
    actions[1].trigger()  # what a click on the menu entry does
    assert tab.prompt.toPlainText() == "a blue whale" and win.generate_vm.params.prompt == "a blue whale"
