"""The live shelf on real folders (pytest-qt): files appear, change and vanish while the app runs; stack files
from the File menu's actions; cards tell same-titled files apart."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.helpers.loras import make_lora

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


def pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture
def live(qtbot, tmp_path, tiny_sd15):
    """A shelf view model and panel watching a real 'team share' folder, after its first scan."""
    from app.gui.shelf_panel import ShelfPanel
    from app.gui.shelf_vm import ShelfViewModel

    share = tmp_path / "share"
    share.mkdir()
    first = make_lora(tiny_sd15, share / "first.safetensors", family="sd1", seed=1, title="First")
    vm = ShelfViewModel()
    panel = ShelfPanel(vm)
    qtbot.addWidget(panel)
    panel.resize(360, 700)
    panel.show()
    vm.set_extra_folders([str(share)])  # what File → Adapter folders… does; starts watching
    qtbot.waitUntil(lambda: vm.busy == 0 and vm.model.row_of(str(first)) is not None, timeout=10_000)
    yield vm, panel, share
    vm.live.watcher.stop()
    from app.engine import facade

    facade.set_extra_adapter_folders([])


def test_a_file_copied_into_a_watched_folder_appears_without_user_action(qtbot, live, tiny_sd15, tmp_path):
    vm, panel, share = live
    made = make_lora(tiny_sd15, tmp_path / "elsewhere.safetensors", family="sd1", seed=2, title="Newcomer")
    dest = share / "sub" / "newcomer.safetensors"
    dest.parent.mkdir()
    shutil.copyfile(made, dest)  # what a sync tool or a teammate's copy does
    qtbot.waitUntil(lambda: vm.model.row_of(str(dest)) is not None, timeout=10_000)
    row = vm.model.row_of(str(dest))
    assert vm.model.item(row).card.title == "Newcomer"
    qtbot.waitUntil(lambda: str(dest) in panel.cards, timeout=2_000)
    assert panel.cards[str(dest)].title.text() == "Newcomer"


def test_a_half_written_file_is_reported_once_when_it_stops_changing(qtbot, tmp_path, tiny_sd15):
    from PySide6.QtCore import QTimer

    from app.gui.folder_watch import FolderWatcher

    folder = tmp_path / "sync"
    folder.mkdir()
    data = make_lora(tiny_sd15, tmp_path / "src.safetensors", family="sd1", seed=3).read_bytes()
    watcher = FolderWatcher(poll_ms=100, settle_ms=1000)
    watcher.set_folders([str(folder)])
    reports = []
    watcher.filesChanged.connect(lambda a, c, r: reports.append([(p, os.path.getsize(p)) for p in a + c]))
    watcher.start()
    target = folder / "arriving.safetensors"
    chunks = [data[i : i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
    timer = QTimer()
    timer.setInterval(100)  # a slow sync: a chunk every 100 ms, much faster than the settle time

    def write_chunk():
        with open(target, "ab") as fh:
            fh.write(chunks.pop(0))
        if not chunks:
            timer.stop()

    timer.timeout.connect(write_chunk)
    timer.start()
    qtbot.waitUntil(lambda: bool(reports), timeout=10_000)
    # A training run's checkpoint beside its adapter is not a style: never reported.
    ckpt = folder / "mine.checkpoints" / "step-000200" / "lora.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(data)
    qtbot.wait(1500)  # any later (duplicate) report would arrive in this time
    watcher.stop()
    assert reports == [[(str(target), len(data))]]  # once, complete; never while it was growing


def test_a_file_replaced_in_place_updates_its_card_and_the_loaded_weights(qtbot, live, tiny_sd15, tmp_path):
    from app.engine import facade
    from app.engine.events import CancelToken
    from app.engine.generate import GenerateConfig, Generator
    from app.engine.generate.identity import adapter_identity

    vm, panel, share = live
    target = share / "first.safetensors"
    row = vm.model.row_of(str(target))
    old_sha = vm.model.item(row).card.sha256
    vm.model.set_enabled(row, True)
    session = facade.GenerationSession(str(tiny_sd15))

    def image(out):
        config = GenerateConfig(prompt="a boat", steps=2, width=64, height=64, seed=5, preview_every=0,
                                stack=vm.model.stack_entries())  # fmt: skip
        [img] = session.generate(config, str(tmp_path / out), on_event=lambda e: None, cancel=CancelToken())
        return img

    before = image("one")
    old_name = adapter_identity(target).adapter_name
    os.replace(make_lora(tiny_sd15, tmp_path / "v2.safetensors", family="sd1", seed=8, title="First v2"), target)
    qtbot.waitUntil(lambda: vm.model.item(vm.model.row_of(str(target))).card.sha256 != old_sha, timeout=10_000)
    card = vm.model.item(vm.model.row_of(str(target))).card
    assert card.title == "First v2" and panel.cards[str(target)].title.text() == "First v2"
    after = image("two")
    assert old_name not in session._generator.adapters  # the watcher made the generator drop the old weights
    fresh_config = GenerateConfig(prompt="a boat", steps=2, width=64, height=64, seed=5, preview_every=0,
                                  out_dir=str(tmp_path / "fresh"), stack=vm.model.stack_entries())  # fmt: skip
    [fresh] = Generator(tiny_sd15).generate(fresh_config)
    assert np.array_equal(pixels(after.path), pixels(fresh.path))
    assert not np.array_equal(pixels(after.path), pixels(before.path))


def test_a_vanished_file_says_so_stays_in_the_stack_and_does_not_break_generation(qtbot, live, tiny_sd15, tmp_path):
    from app.engine import facade
    from app.engine.events import CancelToken, Log
    from app.engine.generate import GenerateConfig

    vm, panel, share = live
    target = share / "first.safetensors"
    vm.model.set_enabled(vm.model.row_of(str(target)), True)
    target.unlink()
    qtbot.waitUntil(lambda: vm.model.item(vm.model.row_of(str(target))).card.missing, timeout=10_000)
    qtbot.waitUntil(lambda: panel.cards[str(target)].byline.text().startswith("⚠ file gone"), timeout=2_000)
    [entry] = vm.model.stack_entries()
    assert entry.path == str(target)  # still in the stack, as missing
    events = []
    config = GenerateConfig(prompt="a boat", steps=2, width=64, height=64, seed=5, preview_every=0,
                            stack=vm.model.stack_entries())  # fmt: skip
    session = facade.GenerationSession(str(tiny_sd15))
    [img] = session.generate(config, str(tmp_path / "out"), on_event=events.append, cancel=CancelToken())
    assert img.path.is_file()
    assert any(isinstance(e, Log) and e.level == "warning" and "the file is gone" in e.message for e in events)


def test_same_title_from_two_people_both_show_told_apart_by_author_and_folder(qtbot, live, tiny_sd15, tmp_path):
    from app.engine import facade

    vm, panel, share = live
    other = tmp_path / "ben-share"
    other.mkdir()
    facade.set_author_name("Ana")
    make_lora(tiny_sd15, share / "ink.safetensors", family="sd1", seed=4, title="Ink")
    facade.set_author_name("Ben")
    make_lora(tiny_sd15, other / "ink.safetensors", family="sd1", seed=5, title="Ink")
    vm.set_extra_folders([str(share), str(other)])
    qtbot.waitUntil(lambda: vm.busy == 0 and vm.model.row_of(str(other / "ink.safetensors")) is not None
                    and vm.model.row_of(str(share / "ink.safetensors")) is not None, timeout=10_000)  # fmt: skip
    lines = {panel.cards[str(p / "ink.safetensors")].byline.text() for p in (share, other)}
    assert len(lines) == 2
    ana, ben = sorted(lines)
    assert ana.startswith("by Ana · changed ") and ana.endswith("· share")
    assert ben.startswith("by Ben · changed ") and ben.endswith("· ben-share")


def test_stack_file_saved_from_the_shelf_and_opened_again(qtbot, live, tiny_sd15):
    from app.gui.team_menu import open_stack_file, save_stack_file

    vm, panel, share = live
    second = make_lora(tiny_sd15, share / "second.safetensors", family="sd1", seed=6, title="Second")
    qtbot.waitUntil(lambda: vm.model.row_of(str(second)) is not None, timeout=10_000)
    first = share / "first.safetensors"
    vm.model.set_enabled(vm.model.row_of(str(second)), True)
    vm.model.set_weight(vm.model.row_of(str(second)), 0.4)
    vm.model.set_enabled(vm.model.row_of(str(first)), True)
    vm.model.move(vm.model.row_of(str(second)), 0)  # the stack's order is the shelf's order
    saved = save_stack_file(vm, str(share / "house.stack.json"))
    assert saved == share / "house.stack.json"
    for row in range(vm.model.rowCount()):
        vm.model.set_enabled(row, False)
    vm.model.move(vm.model.row_of(str(first)), 0)
    second.rename(share / "second-renamed.safetensors")  # resolved by hash after the rename
    qtbot.waitUntil(lambda: vm.model.row_of(str(share / "second-renamed.safetensors")) is not None, timeout=10_000)
    errors = []
    vm.errorRaised.connect(lambda m, d: errors.append(m))
    assert open_stack_file(vm, str(saved)) == []
    stack = vm.model.stack_entries()
    # Opening a stack keeps the shelf's own order (issue #10: restoring never reorders the shelf); what the
    # stack sets is which styles are on and their strengths, the image does not depend on the order.
    on = {(e.path, e.weight) for e in stack if e.enabled}
    assert on == {(str(share / "second-renamed.safetensors"), 0.4), (str(first), 1.0)}
    assert errors == []


def test_a_renamed_file_keeps_its_place_toggle_and_strength(qtbot, live):
    vm, panel, share = live
    target = share / "first.safetensors"
    row = vm.model.row_of(str(target))
    vm.model.set_enabled(row, True)
    vm.model.set_weight(row, 0.3)
    renamed = share / "first-v1.safetensors"
    target.rename(renamed)
    qtbot.waitUntil(lambda: vm.model.row_of(str(renamed)) is not None, timeout=10_000)
    assert vm.model.row_of(str(target)) is None  # no "gone" card left behind for a rename
    [entry] = vm.model.stack_entries()
    assert (entry.path, entry.weight, entry.enabled) == (str(renamed), 0.3, True)


def test_restoring_a_png_made_before_the_file_changed_warns(qtbot, live, tiny_sd15, tmp_path):
    from app.engine.generate import GenerateConfig, Generator
    from app.engine.shelf.stack import StackEntry
    from app.gui.generate_vm import GenerateViewModel

    vm, panel, share = live
    target = share / "first.safetensors"
    config = GenerateConfig(prompt="a boat", steps=2, width=64, height=64, seed=5, preview_every=0,
                            out_dir=str(tmp_path / "pics"), stack=[StackEntry(str(target), name="first")])  # fmt: skip
    [made] = Generator(tiny_sd15).generate(config)
    os.replace(make_lora(tiny_sd15, tmp_path / "v2.safetensors", family="sd1", seed=8, title="First"), target)
    gvm = GenerateViewModel(vm.model)
    errors = []
    gvm.errorRaised.connect(lambda message, details: errors.append(message))
    gvm.restore_from_png(str(made.path))
    assert errors and "Made with an earlier version of first, which is no longer on the shelf" in errors[-1]
    [entry] = vm.model.stack_entries()
    assert entry.path == str(target)  # the current file is used, and the user was told
