"""Shared helpers for the GUI tests: a stand-in training child, style folders, typing, the main window.

Test adapters come from ``tests.helpers.loras``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

# Stand-ins for `styleshelf train --json-events` start with this: they print through the engine's own event
# classes and JSON printer, so they cannot drift from what the real child sends.
FAKE_CHILD_PRELUDE = textwrap.dedent(
    f"""
    import signal, sys, time
    sys.path.insert(0, {str(REPO_ROOT)!r})
    from app.engine.events import (
        CheckpointSaved, Log, Phase, Progress, TrainFinished, TrainSummary, json_event_printer,
    )
    emit = json_event_printer()
    """
)

# Handles SIGTERM like the real trainer (stop, report a cancelled finish), and can crash on request.
FAKE_TRAINER = FAKE_CHILD_PRELUDE + textwrap.dedent(
    """
    mode = sys.argv[1]
    partial = sys.argv[2] if len(sys.argv) > 2 else ""  # where a cancelled run "saves the adapter so far"
    stop = False
    def on_term(*_):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    emit(Log(message="caching latents"))
    total = 5 if mode != "slow" else 10_000
    for step in range(1, total + 1):
        if stop:
            emit(CheckpointSaved(step=step - 1, path="ckpt-%d" % (step - 1)))
            if partial:
                open(partial, "wb").write(b"adapter so far")
            emit(TrainFinished(output=partial, cancelled=True, summary=TrainSummary(cancelled=True)))
            sys.exit(0)
        if mode == "crash" and step == 3:
            print("Traceback: boom", file=sys.stderr, flush=True)
            sys.exit(3)
        if mode == "usererror":
            print("styleshelf: error: Dataset folder not found: /nope", file=sys.stderr, flush=True)
            sys.exit(2)
        emit(Progress(step=step, total=total, loss=1.0 / step, smoothed_loss=1.0 / step, it_per_s=10.0,
                      eta_s=(total - step) / 10.0, phase=Phase.TRAIN))
        print("not json: a stray print", flush=True)
        time.sleep({"slow": 0.05, "slowish": 0.2}.get(mode, 0.02))
    emit(TrainFinished(output="out.safetensors", cancelled=False,
                       summary=TrainSummary(steps=total, total_steps=total, validation_loss_base=0.5,
                                            validation_loss_adapter=0.4)))
    """
)


def fake_trainer_argv(tmp_path: Path, mode: str, partial: Path | None = None) -> list[str]:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER, encoding="utf-8")
    return [sys.executable, str(script), mode, *([str(partial)] if partial else [])]


def make_style_folder(folder: Path, good: int = 4) -> Path:
    """``good`` usable striped images with captions, plus three files that must be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        img = Image.new("RGB", (96, 96), (40 * i % 255, 90, 200))
        for x in range(0, 96, 8):
            for y in range(96):
                img.putpixel((x, y), (250, 250, 250))
        img.save(folder / f"stripes_{i}.png")
        (folder / f"stripes_{i}.txt").write_text(f"stripes number {i}\n", encoding="utf-8")
    (folder / "empty.png").write_bytes(b"")
    (folder / "not_an_image.jpg").write_text("hello, I am text", encoding="utf-8")
    Image.new("RGB", (16, 16), (0, 0, 0)).save(folder / "too_small.png")
    return folder


def type_into(qtbot, box, text: str, *, delay: int = 40) -> None:
    """Type into a number or text box as a person does: click in, select all, type at typing speed, Tab out."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    box.setFocus(Qt.FocusReason.MouseFocusReason)
    QApplication.processEvents()
    box.selectAll()
    qtbot.keyClicks(box, text, delay=delay)
    qtbot.keyClick(box, Qt.Key.Key_Tab)
    QApplication.processEvents()


def open_main_window(qtbot, size: tuple[int, int] = (1280, 800), *, generate_tab_with_shelf: bool = False):
    """The real main window (engine not loaded) at ``size``, shown; optionally on the Generate tab with the
    bundled styles listed on the shelf."""
    from app.gui.app_window import MainWindow

    win = MainWindow(load_engine=False)
    qtbot.addWidget(win)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    if generate_tab_with_shelf:
        win.tabs.setCurrentWidget(win.generate_tab)
        with qtbot.waitSignal(win.shelf_vm.refreshed, timeout=30_000):
            win.shelf_vm.refresh()  # the bundled example styles
    return win
