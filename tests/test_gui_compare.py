"""The Compare window on the tiny model: axes typed, cells streaming in, use/enlarge a cell, a dropped grid PNG
restores the comparison."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.helpers.loras import make_lora

pytestmark = [
    pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise"),
    pytest.mark.usefixtures("isolated_settings", "ui_thread_gc"),
]


@pytest.fixture
def window(qtbot, tiny_sd15, tmp_path_factory):
    from app.engine import facade
    from app.gui.app_window import MainWindow

    shelf = facade.adapters_dir()
    shelf.mkdir(parents=True, exist_ok=True)
    make_lora(tiny_sd15, shelf / "ink.safetensors", seed=1, title="Ink", trigger="inkstyle", thumbnail=True)
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    with qtbot.waitSignal(win.generate_vm.baseLoaded, timeout=120_000):
        win.set_base_model(str(tiny_sd15))
    qtbot.waitUntil(lambda: win.shelf_vm.model.row_of(str(shelf / "ink.safetensors")) is not None, timeout=30_000)
    yield win
    win.generate_vm.shutdown()


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    widget.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier))  # fmt: skip


def click_cell(qtbot, table, row, column, *, double=False):
    center = table.visualItemRect(table.item(row, column)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=center)
    if double:  # a person's double-click: a press, then the double-click on the same cell
        qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=center)


def test_compare_streams_cells_uses_one_and_a_dropped_grid_restores_it(qtbot, window):
    tab = window.generate_tab
    tab.prompt.setFocus()
    qtbot.keyClicks(tab.prompt, "a red circle")
    tab.steps.selectAll()
    qtbot.keyClicks(tab.steps, "2")
    qtbot.keyClick(tab.steps, Qt.Key.Key_Tab)
    assert window.generate_vm.params.steps == 2
    qtbot.mouseClick(tab.compare_button, Qt.MouseButton.LeftButton)
    dialog, vm = tab.compare_dialog, tab.compare_vm
    assert dialog.isVisible()
    qtbot.keyClicks(dialog.axis_edits["X"], "strength:ink=0,1")
    qtbot.keyClicks(dialog.axis_edits["Y"], "seed=11,12")

    arrivals = []  # (cells shown in the table when a cell arrives, progress count)
    vm.cellReady.connect(
        lambda x, y, z, p: arrivals.append(
            (
                x,
                y,
                sum(
                    1
                    for r in range(2)
                    for c in range(2)
                    if dialog.table.item(r, c) and dialog.table.item(r, c).data(256)
                ),
            )
        )
    )
    with qtbot.waitSignal(vm.finished, timeout=120_000) as done:
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
        assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    grid, cancelled = done.args
    assert not cancelled and Path(grid).is_file()
    assert [(x, y) for x, y, _ in arrivals] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert [n for *_, n in arrivals] == [1, 2, 3, 4]  # each cell is in the table as soon as it exists
    assert dialog.progress.value() == 4 and dialog.progress.maximum() == 4
    assert [dialog.table.horizontalHeaderItem(c).text() for c in range(2)] == ["ink: 0", "ink: 1"]
    assert [dialog.table.verticalHeaderItem(r).text() for r in range(2)] == ["Seed: 11", "Seed: 12"]
    assert not dialog.table.item(1, 1).icon().isNull()

    # Pick the cell at strength 1, seed 12: its settings go to the Generate tab and its stack to the shelf.
    model = window.shelf_vm.model
    assert model.stack_entries() == []
    click_cell(qtbot, dialog.table, 1, 1)
    assert dialog.use_button.isEnabled()
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert tab.seed.value() == 12
    assert [(Path(e.path).name, e.weight) for e in model.stack_entries()] == [("ink.safetensors", 1.0)]
    click_cell(qtbot, dialog.table, 0, 0, double=True)
    assert dialog.viewer.isVisible() and "ink: 0" in dialog.viewer.findChildren(type(dialog.status))[-1].text()
    dialog.viewer.close()

    # Close it all, change the settings, then drop the grid PNG on the Generate tab: the comparison returns.
    dialog.close()
    tab.prompt.clear()
    qtbot.keyClicks(tab.prompt, "something else")
    drop(tab, [grid])
    assert dialog.isVisible()
    assert dialog.axis_edits["X"].text() == "strength:ink=0,1" and dialog.axis_edits["Y"].text() == "seed=11,12"
    assert tab.prompt.toPlainText() == "a red circle"
    assert f"Restored the comparison {Path(grid).name}" in dialog.status.text()
    assert sum(1 for r in range(2) for c in range(2) if not dialog.table.item(r, c).icon().isNull()) == 4

    # A picture that is not a grid, dropped on the Compare window, is refused in words.
    single = next(Path(p) for p in vm.cells.values())
    drop(dialog, [single])
    assert "not a StyleShelf comparison grid" in dialog.status.text()


def test_bad_axis_is_shown_and_nothing_runs(qtbot, window):
    tab = window.generate_tab
    qtbot.mouseClick(tab.compare_button, Qt.MouseButton.LeftButton)
    dialog = tab.compare_dialog
    qtbot.keyClicks(dialog.axis_edits["X"], "strenght:ink=0,1")
    qtbot.keyClick(dialog.axis_edits["X"], Qt.Key.Key_Return)
    assert "Unknown axis 'strenght'" in dialog.status.text()
    assert dialog.run_button.isEnabled() and tab.compare_vm.state == "idle"


def test_compare_checkpoints_after_a_run_and_keep_one(qtbot, window, checkpoint_run):
    from safetensors import safe_open

    from app.engine import facade

    # The run lives in the shelf folder, as the app's runs do; the Train tab has its dataset open.
    shelf = facade.adapters_dir()
    shutil.copytree(checkpoint_run.with_name("stripy.checkpoints"), shelf / "stripy.checkpoints")
    adapter = Path(shutil.copy(checkpoint_run, shelf / "stripy.safetensors"))
    train_vm, tab = window.train_vm, window.train_tab
    with qtbot.waitSignal(train_vm.datasetLoaded, timeout=30_000):
        train_vm.load_dataset(str(checkpoint_run.parent / "stripes"))
    assert not tab.compare_button.isVisible()
    train_vm.output_path = str(adapter)
    train_vm.runEnded.emit(False)  # what the trainer's end of run does
    assert tab.compare_button.isVisible()
    gen_tab = window.generate_tab
    gen_tab.steps.selectAll()
    qtbot.keyClicks(gen_tab.steps, "2")
    qtbot.keyClick(gen_tab.steps, Qt.Key.Key_Tab)

    window.tabs.setCurrentWidget(tab)
    qtbot.mouseClick(tab.compare_button, Qt.MouseButton.LeftButton)
    dialog, vm = gen_tab.compare_dialog, gen_tab.compare_vm
    assert window.tabs.currentWidget() is gen_tab and dialog.isVisible() and vm.state == "running"
    with qtbot.waitSignal(vm.finished, timeout=180_000) as done:
        pass  # the grid started with the click; its cells arrive while the event loop runs
    assert not done.args[1]
    assert vm.labels["X"] == ["base", "step 2", "step 4", "step 6", "final"]
    assert vm.labels["Y"] == ["stripy, stripes"]  # the dataset's distinct captions, with the run's trigger
    assert len(vm.cells) == 5 and dialog.keep_button.isVisible()
    # Beside the pictures: each checkpoint's held-out loss, as the run measured its end.
    qtbot.waitUntil(lambda: "step 6" in dialog.figures.text(), timeout=120_000)
    assert sorted(vm.figures) == [2, 4, 6] and "Held-out loss, base " in dialog.figures.text()

    click_cell(qtbot, dialog.table, 0, 0)  # the base column: nothing to keep
    assert not dialog.keep_button.isEnabled()
    click_cell(qtbot, dialog.table, 0, 1)  # step 2
    assert dialog.keep_button.isEnabled()
    with qtbot.waitSignal(window.shelf_vm.model.modelReset, timeout=30_000):  # the shelf re-reads its folders
        qtbot.mouseClick(dialog.keep_button, Qt.MouseButton.LeftButton)
    assert window.shelf_vm.model.row_of(str(adapter)) is not None
    with safe_open(str(adapter), "pt") as f:
        assert f.metadata()["ss_steps"] == "2"
    assert "Kept step 2" in dialog.status.text()
    assert len(list((shelf / "stripy.checkpoints").glob("step-*"))) == 3  # the others stay on disk
