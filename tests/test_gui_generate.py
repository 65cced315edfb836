"""Generate tab against the real engine on the tiny model: background loading, the shelf (toggle, weight,
order, drop-import), weight 0 = base image, restoring settings and stack from a PNG."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.helpers.loras import make_lora

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture(scope="module")
def loras(tiny_sd15, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return [
        make_lora(tiny_sd15, folder / "ink.safetensors", seed=1, title="Ink", trigger="inkstyle", thumbnail=True),
        make_lora(tiny_sd15, folder / "pastel.safetensors", seed=2, title="Pastel", thumbnail=True),
    ]


@pytest.fixture
def window(qtbot, tiny_sd15, loras):
    from app.engine import facade
    from app.gui.app_window import MainWindow

    shelf = facade.adapters_dir()
    shelf.mkdir(parents=True, exist_ok=True)
    shutil.copy(loras[0], shelf / "ink.safetensors")
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.generate_vm.baseLoaded, timeout=120_000):
        win.set_base_model(str(tiny_sd15))
    qtbot.waitUntil(lambda: win.shelf_vm.model.row_of(str(shelf / "ink.safetensors")) is not None, timeout=30_000)
    yield win
    win.generate_vm.shutdown()


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    widget.dropEvent(
        QDropEvent(
            QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
        )
    )


def generate(qtbot, win) -> np.ndarray:
    import threading

    vm = win.generate_vm
    threads = set()
    record = lambda *_: threads.add(threading.current_thread().name)  # noqa: E731
    vm.progressChanged.connect(record)
    vm.imageReady.connect(record)
    with qtbot.waitSignal(vm.finished, timeout=120_000):
        win.generate_tab.generate_button.click()
    vm.progressChanged.disconnect(record)
    vm.imageReady.disconnect(record)
    assert threads == {"MainThread"}, "engine events must reach the view model on the UI thread"
    path = vm.gallery.image(0).path
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_window_shows_base_family_and_ready_status(window, tiny_sd15):
    assert window.family_badge.text() == "SD 1.x"
    assert "ready" in window.base_status.text()
    from app.gui import settings as prefs

    assert prefs.get_str("base_model") == str(tiny_sd15)  # remembered for next start


def test_shelf_changes_next_image_weight_zero_is_base_and_png_restores(qtbot, window):
    tab, vm, model = window.generate_tab, window.generate_vm, window.shelf_vm.model
    tab.prompt.setPlainText("a red circle")
    tab.negative.setPlainText("blurry")
    tab.steps.setValue(2)
    tab.seed.setValue(1234)
    tab.lock.setChecked(True)
    base = generate(qtbot, window)
    assert vm.prompt_history[0] == "a red circle"  # generating puts the prompt in the recent prompts
    ink = next(p for p in tab.shelf_panel.cards if p.endswith("ink.safetensors"))
    card = tab.shelf_panel.cards[ink]
    card.toggle.click()  # on, weight 1
    assert [e.weight for e in model.stack_entries()] == [1.0]
    styled = generate(qtbot, window)
    assert np.abs(styled - base).mean() > 1.0, "an enabled adapter must change the image"
    card.spin.setValue(0.0)
    assert card.slider.value() == 0
    zero = generate(qtbot, window)
    assert np.array_equal(zero, base), "weight 0 must reproduce the base image bit for bit"
    card.slider.setValue(60)
    assert card.spin.value() == pytest.approx(0.6)
    # The reweight already started re-patching in the engine (background); the next image only swaps it in.
    stacks = vm.thread.worker.session._generator.stacks
    assert stacks.wait_prepared(timeout=60) and stacks.patcher.staged_layers > 0
    generate(qtbot, window)
    assert stacks.last.stats.prepared == stacks.last.stats.patched > 0
    assert vm.gallery.rowCount() == 4
    # Same seed everywhere: the tiles tell the pictures apart by what made them.
    tiles = [vm.gallery.index(r).data() for r in range(4)]
    assert tiles[0] == "Ink 0.6\nseed 1234 · 2 steps · DPM++ 2M" and tiles[3].startswith("no style\n")
    assert tab.details.text.text().startswith("Prompt: a red circle") and "Styles: Ink 0.6" in tab.details.text.text()
    png = vm.gallery.image(0).path

    # Change everything, then drop the PNG: prompt, settings and the stack come back.
    tab.prompt.setPlainText("something else")
    tab.negative.setPlainText("")
    tab.steps.setValue(9)
    tab.seed.setValue(5)
    card.toggle.click()
    assert model.stack_entries() == []
    drop(tab, [png])
    assert tab.prompt.toPlainText().endswith("a red circle")
    assert tab.negative.toPlainText() == "blurry"
    assert tab.steps.value() == 2 and tab.seed.value() == 1234 and tab.lock.isChecked()
    assert [(Path(e.path).name, e.weight) for e in model.stack_entries()] == [("ink.safetensors", 0.6)]
    assert card.toggle.isChecked() and card.spin.value() == pytest.approx(0.6)

    # "Use these settings" on the gallery's zero-weight image brings back its seed and stack.
    tab.seed.setValue(99)
    tab.use_settings(1)
    assert tab.seed.value() == 1234
    assert [(Path(e.path).name, e.weight) for e in model.stack_entries()] == [("ink.safetensors", 0.0)]


def test_drop_import_puts_file_on_shelf(qtbot, window, loras):
    panel = window.generate_tab.shelf_panel
    with qtbot.waitSignal(window.shelf_vm.imported, timeout=30_000) as imported:
        drop(panel, [loras[1]])
    (path,) = imported.args[0]
    from app.engine import facade

    assert Path(path).is_file() and Path(path).parent == facade.adapters_dir()
    row = window.shelf_vm.model.row_of(path)
    assert row is not None and window.shelf_vm.model.item(row).card.title == "Pastel"
    assert path in panel.cards
    # A pickle is refused with a reason and the shelf keeps working.
    bad = Path(loras[1]).with_name("evil.ckpt")
    bad.write_bytes(b"\x80\x04pickle")
    with qtbot.waitSignal(window.shelf_vm.errorRaised, timeout=30_000) as err:
        drop(panel, [bad])
    assert "evil.ckpt" in err.args[0]
    assert window.banner.message()

    # Bake the two enabled styles into one shareable adapter: it lands on the shelf as a new card.
    model = window.shelf_vm.model
    ink = next(p for p in panel.cards if p.endswith("ink.safetensors"))
    model.set_enabled(model.row_of(ink), True)
    model.set_enabled(row, True)
    model.set_weight(row, 0.5)
    out = facade.adapters_dir() / "house.safetensors"
    with qtbot.waitSignal(model.rowsInserted, timeout=60_000):
        window.shelf_vm.bake(str(out), None)
    assert out.is_file() and str(out) in panel.cards


def test_remembered_base_model_loads_in_background_after_start(qtbot, tiny_sd15):
    from app.gui import settings as prefs
    from app.gui.app_window import MainWindow

    prefs.set_value("base_model", str(tiny_sd15))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    assert win.generate_vm.state == "no-model"  # nothing heavy happens before the window is up
    assert win.base_label.text() == tiny_sd15.name and win.family_badge.text() == "SD 1.x"
    with qtbot.waitSignal(win.generate_vm.baseLoaded, timeout=120_000):
        pass
    assert "ready" in win.base_status.text()
    assert win.generate_tab.generate_button.isEnabled()
    win.generate_vm.shutdown()


def test_images_from_earlier_sessions_come_back_with_their_settings(qtbot, window):
    from app.gui.generate_vm import GenerateViewModel

    tab = window.generate_tab
    tab.prompt.setPlainText("a green star")
    tab.steps.setValue(2)
    tab.seed.setValue(4242)
    tab.lock.setChecked(True)
    generate(qtbot, window)
    later = GenerateViewModel(window.shelf_vm.model)  # a new session: nothing in memory
    assert later.load_previous_images() == 1
    image = later.gallery.image(0)
    assert image.seed == 4242 and image.params is None
    # Its label is read from the PNG itself: what made it, not only the seed.
    assert later.gallery.index(0).data() == f"no style\nseed 4242 · 2 steps · {window.generate_vm.params.sampler}"
    later.use_image_settings(image)
    assert later.params.prompt.endswith("a green star") and later.params.seed == 4242 and later.params.steps == 2


def test_extra_adapter_folders_are_listed_and_remembered(qtbot, loras, tmp_path):
    from app.engine import facade
    from app.gui.dialogs import AdapterFoldersDialog
    from app.gui.shelf_vm import ShelfViewModel

    team = tmp_path / "team-share"
    team.mkdir()
    shutil.copy(loras[1], team / "pastel.safetensors")
    shared = str(team / "pastel.safetensors")
    vm = ShelfViewModel()
    try:
        with qtbot.waitSignal(vm.refreshed, timeout=30_000):
            vm.refresh()
        assert vm.model.row_of(shared) is None
        dialog = AdapterFoldersDialog(vm.extra_folders)
        qtbot.addWidget(dialog)
        dialog.add_folder(str(team))
        dialog.add_folder(str(team))  # a folder is listed once
        assert dialog.folders() == [str(team)]
        with qtbot.waitSignal(vm.refreshed, timeout=30_000):
            vm.set_extra_folders(dialog.folders())
        assert vm.model.item(vm.model.row_of(shared)).card.title == "Pastel"
        # The next session (a new view model) lists it again from the remembered preference.
        later = ShelfViewModel()
        assert later.extra_folders == [str(team)]
        with qtbot.waitSignal(later.refreshed, timeout=30_000):
            later.refresh()
        assert later.model.row_of(shared) is not None
        with qtbot.waitSignal(later.refreshed, timeout=30_000):
            later.set_extra_folders([])
        assert later.model.row_of(shared) is None and (team / "pastel.safetensors").is_file()
    finally:
        facade.set_extra_adapter_folders([])
