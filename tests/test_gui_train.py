"""Train tab: dataset grid from a dropped folder, caption edits, the child-process runner (with a stand-in
child for events/crash/cancel) and a real training run on the tiny model through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.helpers.gui import fake_trainer_argv, make_style_folder

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def train_tab(qtbot):
    from app.gui.train_tab import TrainTab
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    return tab


def drop_urls(widget, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    widget.dropEvent(event)


def test_dropped_folder_fills_grid_with_usable_and_skipped(qtbot, train_tab, tmp_path):
    folder = make_style_folder(tmp_path / "style", good=5)
    vm = train_tab.vm
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000) as blocker:
        drop_urls(train_tab, [folder])
    assert blocker.args == [5, 3]
    model = vm.dataset
    assert model.rowCount() == 8
    reasons = dict(model.skipped())
    assert set(reasons) == {"empty.png", "not_an_image.jpg", "too_small.png"}
    assert all(reason for reason in reasons.values())
    assert "5 usable · 3 skipped" in train_tab.counts_label.text()
    assert train_tab.grid.isVisibleTo(train_tab) and not train_tab.hint_frame.isVisibleTo(train_tab)
    # Thumbnails load lazily, off the UI thread, and land in the model.
    from app.gui.dataset_model import PathRole

    first_good = next(r for r in range(8) if not model.index(r).data(Qt.ItemDataRole.UserRole + 2))
    model.index(first_good).data(Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: model.thumbnails.is_loaded(model.index(first_good).data(PathRole)), timeout=10_000)


def test_caption_edit_is_saved_to_sidecar(qtbot, train_tab, tmp_path):
    folder = make_style_folder(tmp_path / "style", good=2)
    with qtbot.waitSignal(train_tab.vm.datasetLoaded, timeout=30_000):
        train_tab.vm.load_dataset(str(folder))
    model = train_tab.vm.dataset
    row = next(r for r in range(model.rowCount()) if Path(model.entries()[r].path).name == "stripes_1.png")
    assert model.index(row).data(Qt.ItemDataRole.EditRole) == "stripes number 1"
    assert model.setData(model.index(row), "  blue stripes, bold  ")
    assert (folder / "stripes_1.txt").read_text(encoding="utf-8") == "blue stripes, bold\n"
    skipped_row = next(r for r in range(model.rowCount()) if model.entries()[r].skipped_reason)
    assert not model.flags(model.index(skipped_row)) & Qt.ItemFlag.ItemIsEditable


def test_settings_form_follows_config_and_presets(qtbot, train_tab):
    from PySide6.QtWidgets import QComboBox, QSpinBox

    form, vm = train_tab.form, train_tab.vm
    steps = form.editors["steps"]
    assert isinstance(steps, QSpinBox) and steps.minimum() == 1 and steps.maximum() == 200_000
    assert steps.toolTip()  # help text becomes the tooltip
    assert isinstance(form.editors["lr_schedule"], QComboBox)
    assert "dataset_dir" not in form.editors and "base" not in form.editors
    assert form.advanced_button.isVisibleTo(train_tab) and not form.advanced_panel.isVisibleTo(train_tab)
    assert form.editors["noise_offset"].parent() is form.advanced_panel
    network = form.editors["network"]  # DoRA / LoKr: a choice of the advanced section, LoRA by default
    assert [network.itemData(i) for i in range(network.count())] == ["lora", "dora", "lokr"]
    assert network.currentData() == "lora" and network.parent() is form.advanced_panel
    network.setCurrentIndex(2)
    assert vm.value("network") == "lokr"
    form.advanced_button.click()
    assert form.advanced_panel.isVisibleTo(train_tab)
    steps.setValue(123)
    assert vm.value("steps") == 123
    vm.apply_preset("quality style")
    assert steps.value() == vm.presets["quality style"]["steps"]
    assert form.editors["rank"].value() == vm.presets["quality style"]["rank"]


def test_runner_turns_child_lines_into_signals(qtbot, tmp_path):
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    points, progress = [], []
    vm.lossPoint.connect(lambda s, loss, sm: points.append((s, loss)))
    vm.progressChanged.connect(lambda s, t, r, e: progress.append((s, t)))
    with qtbot.waitSignal(vm.runEnded, timeout=30_000) as blocker, qtbot.waitSignal(vm.validationReady) as val:
        vm.start_argv(fake_trainer_argv(tmp_path, "ok"))
    assert blocker.args == [False]
    assert progress == [(s, 5) for s in range(1, 6)]
    assert points[-1] == (5, pytest.approx(0.2))
    assert val.args == [0.5, 0.4]
    assert vm.state == "idle"


def test_crashing_child_becomes_an_error_not_a_crash(qtbot, tmp_path):
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    with qtbot.waitSignal(vm.errorRaised, timeout=30_000) as err:
        vm.start_argv(fake_trainer_argv(tmp_path, "crash"))
    assert "exit code 3" in err.args[0]
    assert "boom" in err.args[1]  # stderr is the details
    with qtbot.waitSignal(vm.errorRaised, timeout=30_000) as err:
        vm.start_argv(fake_trainer_argv(tmp_path, "usererror"))
    assert err.args[0] == "Dataset folder not found: /nope"


def test_cancel_stops_child_and_allows_resume(qtbot, tmp_path):
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    vm.output_path = str(tmp_path / "x.safetensors")
    with qtbot.waitSignal(vm.progressChanged, timeout=30_000):
        vm.start_argv(fake_trainer_argv(tmp_path, "slow"))
    with qtbot.waitSignal(vm.runEnded, timeout=30_000) as ended:
        vm.cancel()
    assert ended.args == [True]
    assert vm.last_checkpoint.startswith("ckpt-")
    assert vm.can_resume()


def test_a_cancelled_runs_saved_adapter_goes_to_the_shelf(qtbot, tmp_path):
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    partial = tmp_path / "so-far.safetensors"
    ready = []
    vm.adapterReady.connect(ready.append)
    with qtbot.waitSignal(vm.progressChanged, timeout=30_000):
        vm.start_argv(fake_trainer_argv(tmp_path, "slow", partial))
    with qtbot.waitSignal(vm.runEnded, timeout=30_000):
        vm.cancel()
    assert ready == [str(partial)] and vm.can_resume()


def test_kill_timer_of_a_cancelled_run_spares_the_resumed_run(qtbot, tmp_path):
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    vm.runner.kill_after_ms = 300  # the stuck-child guard fires while the next run is going
    with qtbot.waitSignal(vm.progressChanged, timeout=30_000):
        vm.start_argv(fake_trainer_argv(tmp_path, "slow"))
    with qtbot.waitSignal(vm.runEnded, timeout=30_000):
        vm.cancel()
    errors = []
    vm.errorRaised.connect(lambda m, d: errors.append(m))
    with qtbot.waitSignal(vm.runEnded, timeout=30_000) as ended:
        vm.start_argv(fake_trainer_argv(tmp_path, "slowish"))  # ~1 s: outlives the 300 ms timer
    assert errors == [] and ended.args == [False]


def _window_with_dataset(qtbot, base, folder, *, open_in_tab: bool, **settings):
    """A window (engine not loaded) on ``base`` with a small style folder read and tiny-run settings applied."""
    from app.gui.app_window import MainWindow

    make_style_folder(folder, good=4)
    win = MainWindow(load_engine=False)
    qtbot.addWidget(win)
    win.set_base_model_without_loading(str(base))
    with qtbot.waitSignal(win.train_vm.datasetLoaded, timeout=60_000):
        if open_in_tab:
            win.train_tab.open_paths([str(folder)])
        else:
            win.train_vm.load_dataset(str(folder))
    for name, value in {"resolution": 64, "rank": 4, "checkpoint_every": 0, "sample_steps": 2, **settings}.items():
        win.train_vm.set_value(name, value)
    return win


def test_real_training_in_child_process_lands_on_shelf(qtbot, tmp_path, tiny_sd15):
    """The real CLI trains the tiny model for a few steps in a child process; the window puts the new
    adapter on the shelf with the progress and validation signals seen on the way."""
    win = _window_with_dataset(
        qtbot,
        tiny_sd15,
        tmp_path / "ink style",
        open_in_tab=True,
        name="Ink test",
        steps=4,
        batch_size=2,
        learning_rate=1e-3,
    )
    vm = win.train_vm
    assert win.train_tab.start_button.isEnabled()
    progress = []
    vm.progressChanged.connect(lambda s, t, r, e: progress.append((s, t)))
    with (
        qtbot.waitSignal(win.shelf_vm.imported, timeout=300_000) as landed,
        qtbot.waitSignal(vm.validationReady, timeout=300_000) as validation,
    ):
        win.train_tab.start_button.click()
    assert (4, 4) in progress
    (path,) = landed.args[0]
    assert Path(path).name == "Ink-test.safetensors" and Path(path).is_file()
    row = win.shelf_vm.model.row_of(path)
    assert row is not None and win.shelf_vm.model.item(row).card.title == "Ink test"
    base_loss, adapter_loss = validation.args
    assert isinstance(base_loss, float) and isinstance(adapter_loss, float)
    assert win.train_tab.loss_plot is not None and win.train_tab.loss_plot.point_count() == 4
    win.generate_vm.shutdown()


@pytest.mark.slow
def test_real_training_cancel_then_resume(qtbot, tmp_path, tiny_sd15):
    """Cancel a real run (SIGTERM → the CLI saves a checkpoint), then Resume finishes it onto the shelf."""
    win = _window_with_dataset(
        qtbot, tiny_sd15, tmp_path / "style", open_in_tab=False, name="resumable", steps=400, batch_size=1
    )
    vm = win.train_vm
    steps = []
    vm.lossPoint.connect(lambda s, loss, sm: steps.append(s))
    vm.start()
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=300_000)
    with qtbot.waitSignal(vm.runEnded, timeout=120_000) as ended:
        win.train_tab.cancel_button.click()
    assert ended.args == [True]
    assert max(steps) < 400
    partial = win.shelf_vm.model.row_of(vm.output_path)  # the adapter so far is usable at once
    assert partial is not None and Path(vm.output_path).name == "resumable.safetensors"
    assert vm.can_resume() and win.train_tab.resume_button.isEnabled()
    vm.set_value("steps", max(steps) + 3)  # finish soon after the resume point
    errors, landed = [], []
    vm.errorRaised.connect(lambda msg, details: errors.append((msg, details[-2000:])))
    win.shelf_vm.imported.connect(landed.append)
    rows_before = win.shelf_vm.model.rowCount()
    win.train_tab.resume_button.click()
    qtbot.waitUntil(lambda: bool(landed or errors), timeout=300_000)
    assert not errors
    assert Path(landed[0][0]).name == "resumable.safetensors"
    assert win.shelf_vm.model.rowCount() == rows_before  # Resume updated the cancelled run's card, no duplicate
    assert min(steps[-3:]) > 1  # the resumed run continued, it did not start over


def test_new_run_never_overwrites_an_existing_style(tmp_path):
    from app.engine import facade
    from app.gui.train_vm import _unused

    first = facade.new_adapter_path("Ink test")
    first.parent.mkdir(parents=True, exist_ok=True)
    assert _unused(first) == first
    first.write_bytes(b"finished style")
    assert _unused(first).name == "Ink-test-2.safetensors"
    (first.parent / "Ink-test-2.checkpoints").mkdir()
    assert _unused(first).name == "Ink-test-3.safetensors"


def test_training_resolution_follows_the_base_model_until_the_user_picks_one(tiny_sd15):
    from app.engine import facade
    from app.gui.train_vm import TrainViewModel

    assert facade.inspect_base_model(str(tiny_sd15)).resolution == 64  # UNet sample size 32 × VAE downscale 2
    vm = TrainViewModel()
    assert vm.value("resolution") == 512  # the engine's default (SD's size) before a base is known
    vm.set_native_resolution(64)
    assert vm.value("resolution") == 64
    vm.set_native_resolution(1024)  # another base: still untouched by the user, so it follows
    assert vm.value("resolution") == 1024
    vm.set_value("resolution", 96)  # the user's own choice survives a change of base
    vm.set_native_resolution(64)
    assert vm.value("resolution") == 96


def test_demo_model_base_suggests_the_demo_preset_until_the_user_changes_settings(qtbot, tiny_sd15):
    from app.engine import facade
    from app.engine.train.config import config_from_preset
    from app.gui.app_window import MainWindow

    assert config_from_preset("demo model").lora_targets == "attention+ff+conv"  # a valid config
    win = MainWindow(load_engine=False)
    qtbot.addWidget(win)
    vm, combo = win.train_vm, win.train_tab.preset_combo
    demo = facade.default_base_model()
    assert demo and facade.inspect_base_model(demo).is_demo
    win.set_base_model_without_loading(demo)  # also what a first start does
    assert (vm.value("steps"), vm.value("learning_rate"), vm.value("resolution")) == (1500, 1e-3, 64)
    assert vm.value("partial_strength") == 0.8  # weight 0.5 shows half the look, as with the bundled styles
    assert combo.currentData() == "demo model"
    # Another base, then back: a user's own change is never overwritten by the suggestion.
    vm.load_settings()
    vm.set_value("steps", 123)
    win.set_base_model_without_loading(str(tiny_sd15))
    assert not facade.inspect_base_model(str(tiny_sd15)).is_demo
    win.set_base_model_without_loading(demo)
    assert vm.value("steps") == 123 and vm.value("learning_rate") != 1e-3
