"""The small things of issue 10's polish list, each driven through the window: theme icons instead of emoji, the
F1 table, save dialogs that start in a sensible folder, where pictures are saved (with Open folder), status lines
per tab, an unclipped Bake file box, refusals that lead with what to do."""

from __future__ import annotations

import unicodedata

import pytest
from PySide6.QtCore import Qt

from tests.helpers.gui import open_main_window

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def window(qtbot):
    return open_main_window(qtbot)


def symbol_glyphs(text: str) -> set[str]:
    """Pictographs and dingbats ("⏳", "✓", "⚄", "⚠", "✕"): many common fonts draw them as empty boxes."""
    return {
        ch for ch in text if unicodedata.category(ch) == "So" and (0x2300 <= ord(ch) <= 0x27BF or ord(ch) >= 0x1F000)
    }


def test_status_and_buttons_use_theme_icons_not_emoji(qtbot, window):
    from PySide6.QtWidgets import QAbstractButton, QLabel

    from app.gui.generate_vm import GenerateState

    for state in (GenerateState.LOADING, GenerateState.READY):
        window.generate_vm.stateChanged.emit(state)
        assert not window.base_icon.pixmap().isNull() and window.base_icon.isVisible()
        window.show_error("Something to show", "details")
        texts = [w.text() for w in window.findChildren(QLabel) + window.findChildren(QAbstractButton)]
        found = set().union(*(symbol_glyphs(t) for t in texts))
        assert not found, f"emoji/dingbat glyphs in the window: {found}"
    assert window.base_status.text() == "ready"


def test_f1_lists_shortcuts_in_aligned_columns(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialog = window.shortcuts_dialog
    qtbot.waitExposed(dialog)
    rows = dialog.rows()
    assert ("Ctrl+Return", "Train / Generate") in rows and ("F1", "Keyboard shortcuts") in rows
    table = dialog.table
    # One column per kind: every shortcut starts at the same x, every action at the same x.
    lefts = {table.visualItemRect(table.item(r, c)).left() for r in range(table.rowCount()) for c in (0,)}
    actions = {table.visualItemRect(table.item(r, 1)).left() for r in range(table.rowCount())}
    assert len(lefts) == 1 and len(actions) == 1
    widest = max(table.fontMetrics().horizontalAdvance(keys) for keys, _ in rows)
    assert table.columnWidth(0) >= widest, "no shortcut is clipped"
    dialog.close()


def test_save_dialog_opens_in_pictures_then_in_the_last_used_folder(qtbot, window, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    from app.gui import file_dialogs
    from app.gui.gallery import GalleryImage

    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    monkeypatch.setattr(file_dialogs.QStandardPaths, "writableLocation", lambda _loc: str(pictures))
    png = tmp_path / "made.png"
    Image.new("RGB", (8, 8)).save(png)
    window.generate_vm.gallery.add(GalleryImage(str(png), 3, None))
    asked, chosen = [], tmp_path / "portfolio" / "keeper.png"
    chosen.parent.mkdir()

    def dialog(_parent, _title, start, _filters):  # the user picks a folder of their own
        asked.append(start)
        return str(chosen), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    window.generate_tab.save_image(0)
    assert asked[-1] == str(pictures / "made.png") and chosen.is_file()
    window.generate_tab.save_image(0)
    assert asked[-1] == str(chosen.parent / "made.png")


def test_autosaved_pictures_say_where_with_an_open_folder_button(qtbot, window, monkeypatch):
    from app.engine import facade
    from app.gui import preview

    opened = []
    monkeypatch.setattr(preview.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    window.tabs.setCurrentWidget(window.generate_tab)
    details = window.generate_tab.details
    assert str(facade.gallery_dir()) in details.saved_label.text() and details.saved_label.isVisible()
    qtbot.mouseClick(details.open_button, Qt.MouseButton.LeftButton)
    assert opened == [str(facade.gallery_dir())]


def test_status_messages_stay_with_their_tab(qtbot, window):
    window.tabs.setCurrentWidget(window.train_tab)
    window.train_vm.message.emit("Scanned 12 images")
    window.generate_vm.message.emit("Done in 22.3 s · saved in /somewhere")
    assert window.status_line.text() == "Scanned 12 images"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # View → Generate tab
    assert window.tabs.currentWidget() is window.generate_tab
    assert window.status_line.text() == "Done in 22.3 s · saved in /somewhere"
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.status_line.text() == "Scanned 12 images"


def test_bake_dialog_shows_the_whole_file_name(qtbot):
    from app.gui.dialogs import BakeDialog

    dialog = BakeDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    edit = dialog.path_edit
    assert edit.width() >= edit.fontMetrics().horizontalAdvance(edit.text()) + 8


def test_refusal_leads_with_what_to_do_and_keeps_the_figures_in_details(qtbot, window, tmp_path):
    bad = tmp_path / "gift.safetensors"
    bad.write_bytes((7_021_991_845_529_153_390).to_bytes(8, "little") + b"{}")
    window.tabs.setCurrentWidget(window.generate_tab)
    with qtbot.waitSignal(window.shelf_vm.errorRaised, timeout=30_000):
        window.generate_tab.shelf_panel.drop_files([str(bad)])
    message = window.banner.message()
    assert "damaged or not a safetensors file" in message and "Ask for it again" in message
    assert "7,021,991,845,529,153,390" not in message
    qtbot.mouseClick(window.banner.details_button, Qt.MouseButton.LeftButton)
    assert "header claims 7,021,991,845,529,153,390 bytes" in window.banner.details_view.toPlainText()


def test_generate_form_tooltips_say_what_and_when(window):
    tab = window.generate_tab
    for box in (
        tab.prompt,
        tab.negative,
        tab.seed,
        tab.lock,
        tab.steps,
        tab.guidance,
        tab.width_box,
        tab.sampler,
        tab.batch,
        tab.triggers,
    ):
        tip = box.toolTip()
        assert len(tip) > 60 and (". " in tip or ": " in tip), f"{type(box).__name__}: {tip!r}"
