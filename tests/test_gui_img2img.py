"""Generate tab, image to image and inpainting on the demo model, driven as a person does: drop a picture on the
preview, move the strength slider with the keyboard, paint a mask with the mouse, generate, go back to text to
image, restore the picture's settings from its PNG, batch restyle a folder and cancel it, paste a picture."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.engine.generate.masks import blur_mask
from app.engine.paths import DEMO_MODEL_DIR
from tools.demo.scenes import Scene, render

pytestmark = [
    # The offscreen platform cannot raise a popup menu or grab the keyboard for it: harmless here.
    pytest.mark.qt_log_ignore("propagateSizeHints", r"support raise\(\)", "grabbing the keyboard"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def window(qtbot):
    from app.gui.app_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    with qtbot.waitSignal(win.generate_vm.baseLoaded, timeout=120_000):
        win.set_base_model(str(DEMO_MODEL_DIR))
    QTest.keyClick(win, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # the Generate tab, as a person would
    assert win.tabs.currentWidget() is win.generate_tab
    yield win
    win.generate_vm.shutdown()


@pytest.fixture
def circle(tmp_path):
    path = tmp_path / "my circle.png"
    render(Scene("circle", "red", "blue", "large")).save(path)
    return path


def drop_on(widget, paths) -> None:
    """A drag entering ``widget`` and dropping, delivered as the window system does (through event filters;
    Qt delivers a drop only to a widget that a drag entered), not a direct dropEvent call."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    action, button, mods = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(10, 10), action, mime, button, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the widget takes the drag"
    QApplication.sendEvent(widget, QDropEvent(QPointF(10, 10), action, mime, button, mods))


def run_and_wait(qtbot, win, *, timeout=120_000):
    with qtbot.waitSignal(win.generate_vm.finished, timeout=timeout) as done:
        QTest.mouseClick(win.generate_tab.generate_button, Qt.MouseButton.LeftButton)
    return done.args[0]


def test_drop_paint_generate_go_back_and_restore_from_png(qtbot, window, circle):
    tab, vm = window.generate_tab, window.generate_vm
    panel, model = tab.input_panel, vm.inputs
    assert not panel.isVisible() and panel.text_row.isVisible()

    drop_on(tab.preview, [circle])
    assert vm.params.init_image == str(circle) and vm.params.mode == "img2img"
    assert panel.isVisible() and "restyling my circle.png" in panel.title.text()

    # Strength with the keyboard: Home = 0, then six PageUps of 10.
    panel.strength.setFocus()
    QTest.keyClick(panel.strength, Qt.Key.Key_Home)
    for _ in range(6):
        QTest.keyClick(panel.strength, Qt.Key.Key_PageUp)
    assert vm.params.strength == pytest.approx(0.6) and panel.strength_label.text() == "0.60"

    # Brush radius 12 typed in, then a stroke across the circle with the mouse.
    panel.brush.setFocus()
    panel.brush.selectAll()
    QTest.keyClicks(panel.brush, "12")
    QTest.keyClick(panel.brush, Qt.Key.Key_Tab)
    canvas = panel.canvas
    qtbot.waitUntil(lambda: canvas.picture_rect().width() > 100)
    start, end = canvas.to_widget(QPointF(22, 32)).toPoint(), canvas.to_widget(QPointF(42, 32)).toPoint()
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for x in range(start.x(), end.x() + 1, 6):
        QTest.mouseMove(canvas, QPoint(x, start.y()))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    mask_path = Path(vm.params.mask_image)
    assert vm.params.mode == "inpaint" and mask_path.is_file()
    mask = np.asarray(Image.open(mask_path).convert("L"))
    assert mask.shape == (64, 64) and mask[32, 32] == 255 and mask[32, 12] == 255 and mask[2, 2] == 0
    assert mask[5, 32] == 0, "only within the brush radius of the stroke"
    assert "Inpainting my circle.png" in panel.title.text() and panel.inpaint_form.isVisible()

    tab.prompt.setFocus()
    tab.prompt.selectAll()
    QTest.keyClicks(tab.prompt, "a yellow star on a blue background")
    assert run_and_wait(qtbot, window) is False
    out = vm.gallery.image(0).path
    from app.engine.generate.pngmeta import read_png_text

    params = read_png_text(out)["parameters"]
    assert "Denoising strength: 0.6" in params and "Mask blur: 4" in params
    result = np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)
    source = np.asarray(Image.open(circle).convert("RGB"), dtype=np.int16)
    keep = np.asarray(blur_mask(Image.open(mask_path).convert("L"), 4)) == 0
    assert keep.mean() > 0.3 and np.abs(result - source)[keep].max() == 0, "unpainted pixels stay the input's"
    assert np.abs(result - source)[mask == 255].mean() > 20, "the painted stroke is redrawn"

    # A clear way back to text to image.
    QTest.mouseClick(panel.back_button, Qt.MouseButton.LeftButton)
    assert vm.params.mode == "txt2img" and not panel.isVisible() and panel.text_row.isVisible()

    # "Use as input" in the gallery's context menu: the result becomes the next input.
    gallery = tab.gallery
    tab._gallery_menu(gallery.visualRect(vm.gallery.index(0)).center())
    menu = QApplication.activePopupWidget()
    next(a for a in menu.actions() if a.text() == "Use as input").trigger()
    menu.close()
    assert vm.params.init_image == out and vm.params.mode == "img2img" and panel.isVisible()
    QTest.mouseClick(panel.back_button, Qt.MouseButton.LeftButton)

    # Dropping the result on the tab restores the inpainting settings, the input and the painted mask.
    drop_on(tab, [out])
    assert vm.params.mode == "inpaint" and vm.params.init_image == str(circle)
    assert panel.isVisible() and panel.strength.value() == 60
    restored = model.mask.convertToFormat(QImage.Format.Format_Grayscale8)
    assert restored.pixelColor(32, 32).red() == 255 and restored.pixelColor(2, 2).red() == 0

    # Renamed in its folder: found again by its content (the PNG names it by file name and hash only).
    renamed = circle.with_name("renamed.png")
    shutil.move(circle, renamed)
    drop_on(tab, [out])
    assert vm.params.init_image == str(renamed) and model.missing == ""

    # The input gone: the mode still comes back, and the user is told which picture to bring back.
    (circle.parent / "elsewhere").mkdir()
    shutil.move(renamed, circle.parent / "elsewhere" / "moved.png")
    with qtbot.waitSignal(vm.errorRaised, timeout=10_000) as err:
        drop_on(tab, [out])
    assert "Input image my circle.png (sha256 " in err.args[0] and "not found — drop it on the preview" in err.args[0]
    assert vm.params.mode == "inpaint" and model.missing == "my circle.png"


def test_batch_restyle_of_a_folder_fills_the_gallery_and_cancel_stops_it(qtbot, window, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, colour in enumerate(("red", "yellow", "green", "purple")):
        render(Scene("circle", colour, "blue")).save(frames / f"frame-{i}.png")
    vm, model = window.generate_vm, window.generate_vm.inputs
    window.generate_tab.steps.setValue(6)
    with qtbot.waitSignal(vm.finished, timeout=120_000) as done:
        assert model.restyle_folder(str(frames), str(tmp_path / "out"))
    assert done.args[0] is False
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f"frame-{i}.png" for i in range(4)]
    assert window.generate_tab.progress.value() == window.generate_tab.progress.maximum()
    assert vm.gallery.rowCount() == 4

    # Cancel after the first picture: the rest is not made, nothing half-written is left.
    first = []
    vm.imageReady.connect(
        lambda path: (
            first.append(path)
            or (len(first) == 1 and QTest.mouseClick(window.generate_tab.cancel_button, Qt.MouseButton.LeftButton))
        )
    )
    with qtbot.waitSignal(vm.finished, timeout=120_000) as done:
        model.restyle_folder(str(frames), str(tmp_path / "cancelled"))
    assert done.args[0] is True
    made = list((tmp_path / "cancelled").glob("*.png"))
    assert 1 <= len(made) < 4 and not list((tmp_path / "cancelled").glob(".*.tmp"))


def test_use_these_settings_on_a_batch_result_restores_image_to_image_with_its_own_input(
    qtbot, window, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QFileDialog

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, colour in enumerate(("red", "yellow", "green")):
        render(Scene("square", colour, "blue")).save(frames / f"frame-{i}.png")
    tab, vm = window.generate_tab, window.generate_vm
    panel = tab.input_panel
    tab.steps.setValue(4)

    # Settings as a person makes them: a picture dropped on the preview shows the image-to-image form ...
    drop_on(tab.preview, [frames / "frame-0.png"])
    qtbot.waitUntil(lambda: panel.back_button.isVisible() and panel.back_button.width() > 10)  # laid out
    panel.strength.setFocus()
    QTest.keyClick(panel.strength, Qt.Key.Key_Home)
    for _ in range(4):
        QTest.keyClick(panel.strength, Qt.Key.Key_PageUp)
    panel.resize_mode.setFocus()
    QTest.keyClick(panel.resize_mode, Qt.Key.Key_Down)  # "Crop and resize" -> "Just resize"
    vm.inputs.set_setting("mask_blur", 9)  # what the inpainting form's spin box does
    assert (vm.params.strength, vm.params.resize_mode) == (pytest.approx(0.4), "Just resize")
    assert QApplication.activePopupWidget() is None
    QTest.mouseClick(panel.back_button, Qt.MouseButton.LeftButton)
    assert vm.params.mode == "txt2img" and panel.text_row.isVisible()

    # ... then "Batch restyle…" with its two folder dialogs answered.
    answers = iter([str(frames), str(tmp_path / "out")])
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: next(answers))
    qtbot.waitUntil(lambda: panel.batch_button.isVisible() and panel.batch_button.width() > 10)
    with qtbot.waitSignal(vm.finished, timeout=120_000) as done:
        QTest.mouseClick(panel.batch_button, Qt.MouseButton.LeftButton)
    assert done.args[0] is False and vm.gallery.rowCount() == 3
    assert vm.params.mode == "txt2img"

    # "Use these settings" on the result made from frame-1: image to image on frame-1, with the batch's settings.
    row = next(r for r in range(3) if Path(vm.gallery.image(r).path).name == "frame-1.png")
    tab._gallery_menu(tab.gallery.visualRect(vm.gallery.index(row)).center())
    menu = QApplication.activePopupWidget()
    next(a for a in menu.actions() if a.text() == "Use these settings").trigger()
    menu.close()
    assert vm.params.mode == "img2img" and vm.params.init_image == str(frames / "frame-1.png")
    assert (vm.params.strength, vm.params.resize_mode, vm.params.mask_blur) == (pytest.approx(0.4), "Just resize", 9)
    assert panel.isVisible() and panel.strength.value() == 40 and panel.resize_mode.currentText() == "Just resize"
    assert "restyling frame-1.png" in panel.title.text() and not vm.inputs.picture.isNull()


def test_paste_a_picture_with_ctrl_v_switches_to_image_to_image(qtbot, window):
    tab, vm = window.generate_tab, window.generate_vm
    picture = QImage(48, 32, QImage.Format.Format_RGB32)
    picture.fill(Qt.GlobalColor.darkGreen)
    QGuiApplication.clipboard().setImage(picture)
    tab.gallery.setFocus()
    QTest.keyClick(tab.gallery, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    pasted = Path(vm.params.init_image)
    assert vm.params.mode == "img2img" and pasted.is_file() and pasted.parent.name == "inputs"
    assert Image.open(pasted).size == (48, 32)
    # In the prompt box Ctrl+V stays a text paste.
    QGuiApplication.clipboard().setText("a harbour")
    tab.prompt.setFocus()
    QTest.keyClick(tab.prompt, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert "a harbour" in tab.prompt.toPlainText() and Path(vm.params.init_image) == pasted


def test_new_random_seeds_above_two_to_the_31_reach_the_seed_box(qtbot, window):
    """Seeds go up to 2³²−1; the seed signal was a C++ int, so half of all random seeds crashed the app."""
    seen = set()
    for _ in range(24):
        QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # "New random seed"
        assert window.generate_tab.seed.value() == window.generate_vm.params.seed
        seen.add(window.generate_vm.params.seed)
    assert max(seen) > 2**31 and len(seen) > 20
