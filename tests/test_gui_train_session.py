"""Train tab as an artist meets it: Cancel says exactly what was kept (and only a child that ignores it is
killed), Resume shows the true step and the loss so far, the form survives a restart, the name follows the
folder, too few images are called out, the whole form fits a small window, samples are labelled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest

from tests.helpers.gui import FAKE_CHILD_PRELUDE, make_style_folder

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]

# A stand-in for `styleshelf train --json-events` with the cancel behaviours of the real one and of a broken one.
CHILD = FAKE_CHILD_PRELUDE + textwrap.dedent(
    """
    mode, out, ckpt = sys.argv[1], sys.argv[2], sys.argv[3]
    stop = False
    def on_term(*_):
        global stop
        stop = True
    if mode != "dies":
        signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)
    emit(Log(message="Loading base model demo-model…"))
    if mode in ("loading", "dies"):
        while not stop:
            time.sleep(0.02)
        emit(TrainFinished(output="", cancelled=True,
                           summary=TrainSummary(steps=0, total_steps=600, cancelled=True, saved=[], checkpoint="")))
        sys.exit(0)
    time.sleep(1.0 if mode == "slowsave" else 0.0)  # a long quiet phase (loading) sets the child's allowance
    for step in range(1, 100_000):
        if stop:
            time.sleep(1.5 if mode == "slowsave" else 0.0)  # a save that takes a while
            open(out, "wb").write(b"adapter so far")
            emit(CheckpointSaved(step=step - 1, path=ckpt))
            emit(TrainFinished(output=out, cancelled=True,
                               summary=TrainSummary(steps=step - 1, total_steps=600, cancelled=True,
                                                    saved=["adapter", "checkpoint"], checkpoint=ckpt)))
            sys.exit(0)
        if step == 3:
            emit(CheckpointSaved(step=3, path=ckpt))
        emit(Progress(step=step, total=600, loss=1.0 / step, smoothed_loss=1.0 / step, it_per_s=20.0,
                      eta_s=(600 - step) / 20.0, phase=Phase.TRAIN))
        time.sleep(0.05)
    """
)


def child_argv(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    ckpt = tmp_path / "style.checkpoints" / "step-000003"
    return [sys.executable, str(script), mode, str(tmp_path / "style.safetensors"), str(ckpt)]


def _vm():
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    messages = []
    vm.message.connect(messages.append)
    return vm, messages


def _run_and_cancel(qtbot, vm, argv, *, after_steps: int = 5):
    steps = []
    vm.progressChanged.connect(lambda s, *_: steps.append(s))
    vm.message.connect(lambda m: steps.append(0) if m.startswith("Loading base model") else None)
    vm.start_argv(argv)
    qtbot.waitUntil(lambda: len(steps) >= after_steps, timeout=30_000)
    with qtbot.waitSignal(vm.runEnded, timeout=30_000) as ended:
        vm.cancel()
    return ended.args[0]


# ----------------------------------------------------------------------------------------- Cancel


def test_cancel_says_the_adapter_is_on_the_shelf_and_a_checkpoint_was_kept(qtbot, tmp_path):
    vm, messages = _vm()
    shelf = []
    vm.adapterReady.connect(shelf.append)
    assert _run_and_cancel(qtbot, vm, child_argv(tmp_path, "ok")) is True
    step = vm.summary.steps
    assert messages[-1] == (
        f"Stopped at step {step} of 600: the adapter so far is on the shelf and a checkpoint "
        "was kept — Resume continues."
    )
    assert shelf == [str(tmp_path / "style.safetensors")] and vm.can_resume()


@pytest.mark.parametrize("mode", ["loading", "dies"])
def test_cancel_before_the_first_step_says_nothing_was_saved(qtbot, tmp_path, mode):
    """The child saved nothing (stopped while loading, or died of the signal before its handler was set)."""
    vm, messages = _vm()
    assert _run_and_cancel(qtbot, vm, child_argv(tmp_path, mode), after_steps=1) is True
    assert messages[-1] == "Stopped before the first step: nothing was saved."
    assert not vm.can_resume()


def test_a_child_that_ignores_cancel_is_ended_and_the_message_says_so(qtbot, tmp_path):
    vm, messages = _vm()
    vm.runner.kill_after_ms = 400  # its longest quiet spell is ~0.05 s, so the floor decides
    vm.output_path = str(tmp_path / "style.safetensors")
    assert _run_and_cancel(qtbot, vm, child_argv(tmp_path, "stubborn")) is True
    assert messages[-1].startswith("Training did not stop within 1 s of Cancel and was ended")
    assert "nothing new was saved; the checkpoint at step 3 was kept — Resume continues from there." in messages[-1]
    assert vm.can_resume()


def test_a_slow_save_is_waited_for_when_the_child_was_slow_before(qtbot, tmp_path):
    """The allowance is measured against the child's own pace (1 s quiet while loading → 4 s), not a fixed
    timer: a 1.5 s save is not killed although the floor is only 0.3 s."""
    vm, messages = _vm()
    vm.runner.kill_after_ms = 300
    assert _run_and_cancel(qtbot, vm, child_argv(tmp_path, "slowsave")) is True
    assert messages[-1].startswith("Stopped at step ") and "the adapter so far is on the shelf" in messages[-1]
    assert (tmp_path / "style.safetensors").read_bytes() == b"adapter so far"


def test_tab_label_shows_progress_while_training(qtbot, tmp_path):
    from app.gui.train_tab import TrainTab

    vm, _ = _vm()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    titles = []
    tab.titleChanged.connect(titles.append)
    _run_and_cancel(qtbot, vm, child_argv(tmp_path, "ok"), after_steps=10)
    assert any(t.startswith("Train · ") and t.endswith(" %") for t in titles)
    assert titles[-1] == "Train" and tab.rate_label.text() == "Stopped"


def test_time_left_reads_as_a_duration_not_a_clock_time():
    from app.gui.train_tab import format_eta

    assert format_eta(22 * 60 + 35) == "about 23 min left"
    assert format_eta(3 * 3600 + 5 * 60) == "about 3 h 5 min left"
    assert format_eta(40) == "less than a minute left"
    assert ":" not in format_eta(5000)


# --------------------------------------------------------------------------- restart and Resume


def _fake_checkpoint(out: Path, step: int, total: int) -> list[float]:
    """What a cancelled run leaves: ``<out>.checkpoints/step-N/state.json`` with the loss history."""
    from PIL.PngImagePlugin import PngInfo

    losses = [round(1.0 / (1 + i), 6) for i in range(step)]
    samples = out.with_name(out.stem + ".samples")
    samples.mkdir(parents=True)
    for at in (step // 2, step + 50):  # one round before the checkpoint, one the resumed run will redo
        info = PngInfo()
        info.add_text("step", str(at))
        info.add_text("prompt", f"inkw, a round {at}")
        Image.new("RGB", (130, 64), "gray").save(samples / f"step-{at:06d}-0.png", pnginfo=info)
    folder = out.with_name(out.stem + ".checkpoints") / f"step-{step:06d}"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(
        json.dumps({"format": 1, "step": step, "total_steps": total, "loss_history": losses}), encoding="utf-8"
    )
    return losses


def _window(qtbot, base: Path, size=(1024, 640)):
    from app.gui.app_window import MainWindow

    win = MainWindow(load_engine=False)
    qtbot.addWidget(win)
    win.set_base_model_without_loading(str(base))
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_form_folder_and_stopped_run_survive_a_restart_and_resume_shows_the_true_step(qtbot, tmp_path, tiny_sd15):
    folder = make_style_folder(tmp_path / "ink wash", good=6)
    first = _window(qtbot, tiny_sd15)  # start-up reads the (empty) session back
    with qtbot.waitSignal(first.train_vm.datasetLoaded, timeout=30_000):
        first.train_tab.open_paths([str(folder)])
    name_box, trigger_box = first.train_tab.form.editors["name"], first.train_tab.form.editors["trigger"]
    for box, text in ((name_box, "Ink wash"), (trigger_box, "inkw")):
        box.setFocus()
        box.selectAll()
        QTest.keyClicks(box, text)
        QTest.keyClick(box, Qt.Key.Key_Tab)
    combo = first.train_tab.preset_combo
    combo.activated.emit(combo.findData("quality style"))  # what picking it from the list does
    out = tmp_path / "adapters" / "Ink-wash.safetensors"
    losses = _fake_checkpoint(out, 300, 2500)
    first.train_vm.output_path, first.train_vm.last_checkpoint = str(out), str(out) + ".checkpoints/step-000300"
    first.train_vm.runEnded.emit(True)  # a stopped run: its end is what records it
    first.close()

    second = _window(qtbot, tiny_sd15)  # the app restarted
    vm, tab = second.train_vm, second.train_tab
    qtbot.waitUntil(lambda: vm.dataset.folder == str(folder) and vm.state == "idle", timeout=30_000)
    assert vm.dataset.usable_count() == 6
    assert tab.form.editors["name"].text() == "Ink wash" and tab.form.editors["trigger"].text() == "inkw"
    assert vm.value("steps") == 2500 and tab.form.editors["steps"].value() == 2500  # the quality preset's
    assert tab.resume_button.isEnabled()
    assert tab.progress.text() == "300 / 2500 steps"  # where it stopped, not "0 / 100"
    assert tab.ensure_plot().point_count() == 300  # and the curve so far
    assert [(t.step, t.prompt) for t in tab.samples.tiles()] == [(150, "inkw, a round 150")]  # and its samples
    # Resume: the bar and curve keep their place from the first moment (before the child reports).
    QTest.mouseClick(tab.resume_button, Qt.MouseButton.LeftButton)
    assert vm.state == "running"
    assert tab.progress.text() == "300 / 2500 steps" and tab.ensure_plot().point_count() == 300
    assert [t.step for t in tab.samples.tiles()] == [150]
    with qtbot.waitSignal(vm.runEnded, timeout=120_000):
        vm.cancel()
    assert losses[0] == 1.0


def test_name_follows_the_folder_until_the_user_types_one(qtbot, tmp_path):
    from app.gui.train_tab import TrainTab
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    tab.show()
    qtbot.waitExposed(tab)
    name_box = tab.form.editors["name"]
    for folder in ("pastel", "charcoal"):
        with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
            tab.open_paths([str(make_style_folder(tmp_path / folder, good=5))])
        assert name_box.text() == folder and vm.value("name") == folder
    name_box.setFocus()
    name_box.selectAll()
    QTest.keyClicks(name_box, "My charcoal")
    QTest.keyClick(name_box, Qt.Key.Key_Tab)
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(make_style_folder(tmp_path / "graphite", good=5))])
    assert vm.value("name") == "My charcoal"


def test_too_few_images_and_an_empty_folder_are_explained(qtbot, tmp_path):
    from app.gui.train_tab import TrainTab
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    tab.show()
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(make_style_folder(tmp_path / "few", good=2))])
    assert tab.advice_label.isVisible() and "Only 2 usable images" in tab.advice_label.text()
    (tmp_path / "empty").mkdir()
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(tmp_path / "empty")])
    assert tab.hint_frame.isVisible() and not tab.grid.isVisible()
    assert "no pictures" in tab.drop_hint.text()
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(make_style_folder(tmp_path / "plenty", good=6))])
    assert not tab.advice_label.isVisible() and tab.grid.isVisible()


# --------------------------------------------------------------------------------------- layout


def _fully_visible(widget, window) -> bool:
    """The widget's whole rectangle is on screen: inside the window and inside every clipping ancestor."""
    if not widget.isVisible():
        return False
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    if not window.rect().contains(rect):
        return False
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        clip = QRect(parent.mapTo(window, QPoint(0, 0)), parent.size())
        if not clip.contains(rect):
            return False
        parent = parent.parentWidget()
    return True


@pytest.mark.parametrize("size", [(1024, 640), (1280, 800)])
def test_the_whole_common_form_is_visible_without_scrolling(qtbot, tmp_path, tiny_sd15, size):
    win = _window(qtbot, tiny_sd15, size)
    tab = win.train_tab
    with qtbot.waitSignal(win.train_vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(make_style_folder(tmp_path / "style", good=6))])
    qtbot.wait(50)
    common = [e for name, e in tab.form.editors.items() if not _is_advanced(tab, name)]
    assert len(common) >= 7
    for widget in [
        tab.preset_combo,
        *common,
        tab.form.advanced_button,
        tab.start_button,
        tab.cancel_button,
        tab.resume_button,
        tab.progress,
    ]:
        assert _fully_visible(widget, win), (widget.objectName() or type(widget).__name__, size)
    assert tab.form_scroll.verticalScrollBar().maximum() == 0  # nothing to scroll to
    # The plot and samples get the room that is left.
    assert tab.ensure_plot().height() >= 90 and _fully_visible(tab.samples, win)
    QTest.mouseClick(tab.form.advanced_button, Qt.MouseButton.LeftButton)
    assert tab.form.advanced_panel.isVisible() and _fully_visible(tab.form.advanced_button, win)
    assert _fully_visible(tab.start_button, win)  # opening Advanced scrolls the form, not the buttons away


def _is_advanced(tab, name: str) -> bool:
    return tab.form.editors[name].parentWidget() is tab.form.advanced_panel


def test_caption_editor_stays_inside_its_own_cell(qtbot, tmp_path):
    from app.gui.train_tab import TrainTab
    from app.gui.train_vm import TrainViewModel

    vm = TrainViewModel()
    tab = TrainTab(vm)
    qtbot.addWidget(tab)
    tab.resize(1000, 700)
    tab.show()
    qtbot.waitExposed(tab)
    folder = make_style_folder(tmp_path / "style", good=6)
    for txt in folder.glob("*.txt"):  # captions as long as real ones: they wrap onto several lines
        txt.write_text("a small green triangle on a red background, diagonal stripes, soft light\n")
    with qtbot.waitSignal(vm.datasetLoaded, timeout=30_000):
        tab.open_paths([str(folder)])
    grid = tab.grid
    qtbot.waitUntil(lambda: grid.visualRect(grid.model().index(1, 0)).width() > 0, timeout=5_000)
    qtbot.wait(100)  # the grid lays its items out in batches
    from app.gui.dataset_model import SkipReasonRole

    model = grid.model()
    row = next(r for r in range(model.rowCount()) if not model.index(r, 0).data(SkipReasonRole))
    first, second = model.index(row, 0), model.index(row + 1, 0)
    assert grid.visualRect(second).top() == grid.visualRect(first).top()  # its neighbour on the same line
    cell, neighbour = grid.visualRect(first), grid.visualRect(second)
    QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    QTest.mouseDClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    qtbot.waitUntil(lambda: grid.state() == grid.State.EditingState, timeout=5_000)
    (editor,) = [w for w in grid.viewport().children() if w.isWidgetType() and w.isVisible()]
    geometry = editor.geometry()
    below = next(
        (
            grid.visualRect(model.index(r, 0))
            for r in range(row + 1, model.rowCount())
            if grid.visualRect(model.index(r, 0)).top() > cell.top()
        ),
        QRect(),
    )
    assert cell.contains(geometry), (geometry, cell)
    assert not geometry.intersects(neighbour) and not geometry.intersects(below), (geometry, neighbour, below)


# -------------------------------------------------------------------------------- samples, tips


def test_samples_are_labelled_with_step_and_prompt_and_one_can_become_the_shelf_picture(qtbot, tmp_path, tiny_sd15):
    from app.engine import facade
    from app.engine.adapters import read_adapter_info
    from app.gui.sample_strip import SampleStrip
    from tests.helpers.loras import make_lora

    pair = Image.new("RGB", (130, 64), (20, 20, 20))
    pair.paste(Image.new("RGB", (64, 64), (250, 30, 30)), (66, 0))
    sample = tmp_path / "step-000150-0.png"
    pair.save(sample)
    strip = SampleStrip()
    qtbot.addWidget(strip)
    strip.add(150, [(str(sample), "zq, a blue triangle on an orange background")])
    (tile,) = strip.tiles()
    assert "step 150" in tile.step_label.text() and tile.caption.text().startswith("a blue") is False
    assert tile.caption.text().startswith("zq, a blue")
    assert "a blue triangle on an orange background" in tile.toolTip() and "base model" in tile.toolTip()
    adapter = make_lora(tiny_sd15, tmp_path / "style.safetensors", seed=1, title="s", thumbnail=True)
    facade.use_sample_as_thumbnail(str(adapter), str(sample))
    thumb = read_adapter_info(adapter).thumbnail
    from io import BytesIO

    with Image.open(BytesIO(thumb)) as img:
        assert img.convert("RGB").getpixel((img.width // 2, img.height // 2))[0] > 200  # the adapter half


def test_every_setting_says_what_it_does_and_when_to_change_it():
    from app.engine import facade

    for s in facade.train_settings():
        if not s.advanced:
            assert len(s.help.split()) >= 12, (s.name, s.help)
    steps = next(s for s in facade.train_settings() if s.name == "steps")
    assert "raise" in steps.help.lower() and steps.help != "Optimisation steps"


def test_every_preset_samples_a_few_times(qtbot):
    from app.engine.train.config import TRAIN_PRESETS
    from app.engine.train.sampling import sample_steps_of
    from app.gui.train_vm import TrainViewModel

    for name, preset in TRAIN_PRESETS.items():
        rounds = sample_steps_of(
            preset["steps"], every=preset.get("sample_every", 0), count=preset.get("sample_count", 0)
        )
        assert 3 <= len(rounds) <= 6, name
    assert TrainViewModel().value("sample_count") >= 3  # the app's own "Custom" form too


def test_painting_the_loss_plot_does_not_drain_none():
    """pyqtgraph's paints under PySide6 6.12 drop references to None: without app.gui's headroom the process
    aborts ("none_dealloc") a few hundred paints in, i.e. early in a training run."""
    code = textwrap.dedent(
        """
        import app.gui
        from PySide6.QtWidgets import QApplication
        qt = QApplication([])
        from app.gui.loss_plot import LossPlot
        plot = LossPlot()
        plot.resize(600, 200)
        plot.show()
        for i in range(400):
            plot.add_point(i + 1, 0.5, 0.4)
            plot.repaint()
            qt.processEvents()
        print("survived")
        """
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "survived" in proc.stdout, proc.stderr[-2000:]
