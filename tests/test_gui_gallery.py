"""Gallery pictures say what made them, the details panel lists every parameter, "Use these settings" restores
the stack without reordering the shelf (issue 10, item 8); the preview keeps a picture's shape and enlarges small
pictures by a whole factor, pixel-sharp (item 9)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from tests.helpers.gui import open_main_window

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def window(qtbot):
    win = open_main_window(qtbot, (1400, 900), generate_tab_with_shelf=True)
    qtbot.waitExposed(win)
    return win


def add_picture(win, tmp_path, name: str, stack, *, seed: int = 987492339, size=(64, 64)):
    """A picture as the view model files it when the engine reports one (its settings kept in memory)."""
    from app.engine.facade import GenerateConfig
    from app.gui.gallery import GalleryImage

    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, (30 * len(name) % 255, 120, 180)).save(path)
    params = GenerateConfig(prompt="a lighthouse", sampler="Euler a", steps=12, guidance=6.5, seed=seed, stack=stack)
    win.generate_vm.gallery.add(GalleryImage(str(path), seed, params))
    return path


def click_tile(qtbot, gallery, row: int) -> None:
    rect = gallery.visualRect(gallery.model().index(row, 0))
    qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_locked_seed_pictures_can_be_told_apart_and_their_settings_come_back_in_place(qtbot, window, tmp_path):
    from app.engine.facade import StackEntry

    model = window.shelf_vm.model
    a, b = (model.item(r).card for r in (0, 1))

    def entry(card, weight):
        return StackEntry(path=card.path, name=card.title, sha256=card.sha256, weight=weight)

    add_picture(window, tmp_path, "base", [])
    add_picture(window, tmp_path, "styled", [entry(b, 0.6), entry(a, -0.3)])
    gallery, tab = window.generate_tab.gallery, window.generate_tab
    texts = [gallery.model().index(r, 0).data() for r in range(2)]
    assert texts[0] == f"{b.title} 0.6 + {a.title} −0.3\nseed 987492339 · 12 steps · Euler a"
    assert texts[1] == "no style\nseed 987492339 · 12 steps · Euler a"
    tip = gallery.model().index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert f"Styles: {b.title} 0.6 + {a.title} −0.3" in tip and "Guidance (CFG): 6.5" in tip

    click_tile(qtbot, gallery, 0)
    shown = tab.details.text.text()
    for line in (
        "Prompt: a lighthouse",
        f"Styles: {b.title} 0.6 + {a.title} −0.3",
        "Seed: 987492339",
        "Sampler: Euler a",
        "Steps: 12",
        "Guidance (CFG): 6.5",
    ):
        assert line in shown
    assert tab.preview.path.endswith("styled.png")

    order = [it.card.title for it in model.items()]
    qtbot.mouseClick(tab.details.use_button, Qt.MouseButton.LeftButton)
    assert [it.card.title for it in model.items()] == order, "restoring a stack must not reorder the shelf"
    assert [(e.name, e.weight) for e in model.stack_entries()] == [(a.title, -0.3), (b.title, 0.6)]
    assert window.generate_vm.params.steps == 12 and window.generate_vm.params.sampler == "Euler a"


def test_enlarged_view_says_what_made_the_picture(qtbot, window, tmp_path):
    from app.gui.gallery import ImageViewer

    card = window.shelf_vm.model.item(0).card
    from app.engine.facade import StackEntry

    add_picture(window, tmp_path, "one", [StackEntry(path=card.path, name=card.title, weight=0.8)])
    window.generate_tab.enlarge(0)
    viewer = next(w for w in window.generate_tab.children() if isinstance(w, ImageViewer))
    qtbot.addWidget(viewer)
    caption = "\n".join(label.text() for label in viewer.findChildren(type(window.generate_tab.details.text)))
    assert f"Styles: {card.title} 0.8" in caption and "Seed: 987492339" in caption and "Steps: 12" in caption


@pytest.mark.parametrize("size", [(64, 64), (96, 40), (1200, 500)])
def test_preview_keeps_the_shape_and_enlarges_small_pictures_pixel_sharp(qtbot, window, tmp_path, size):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)  # no two neighbours alike
    path = tmp_path / "noise.png"
    Image.fromarray(pixels).save(path)
    from app.gui.gallery import GalleryImage

    window.generate_vm.gallery.add(GalleryImage(str(path), 1, None))
    click_tile(qtbot, window.generate_tab.gallery, 0)
    preview = window.generate_tab.preview
    qtbot.waitUntil(lambda: preview.path == str(path))
    rect = preview.image_rect()
    room = preview.size()
    assert abs(rect.width() / rect.height() - size[0] / size[1]) < 0.02, "the picture keeps its shape"
    shot = preview.grab().toImage().convertToFormat(preview.grab().toImage().Format.Format_RGB888)
    drawn = (
        np.frombuffer(shot.constBits(), np.uint8)
        .reshape(shot.height(), shot.bytesPerLine())[:, : shot.width() * 3]
        .reshape(shot.height(), shot.width(), 3)
    )
    drawn = drawn[rect.top() : rect.bottom() + 1, rect.left() : rect.right() + 1]
    if size[0] < room.width() and size[1] < room.height():
        factor = rect.width() // size[0]
        assert factor >= 2 and rect.width() == size[0] * factor and rect.height() == size[1] * factor
        # Nearest neighbour by a whole factor: every drawn pixel is exactly its source pixel.
        assert np.array_equal(drawn, np.repeat(np.repeat(pixels, factor, 0), factor, 1))
    else:  # larger than the room: scaled down to touch two opposite sides, never past them
        assert rect.width() <= room.width() and rect.height() <= room.height()
        assert rect.width() == room.width() or rect.height() == room.height()
