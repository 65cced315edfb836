"""Render each tab of the real app to PNGs in docs/ (``make screenshots``), for the README.

Besides the README's two pictures (docs/train-tab.png, docs/generate-tab.png) it renders every tab at the
smallest supported window (1024×640) and a roomy one (1400×900), in the dark and the light theme, into
docs/screenshots/<tab>-<width>x<height>-<theme>.png, so layout and contrast can be checked at a glance.

Runs under Xvfb when there is no display (re-executing itself through ``xvfb-run``), else offscreen.
Uses a private STYLESHELF_HOME, the bundled demo model when it is there (else a tiny random model), the
first bundled style folder as the dataset (else a generated one), and really trains and generates:
nothing in the pictures is mocked. ``--quick`` skips the training run (for layout work).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DOCS = REPO / "docs"
SIZE = (1400, 880)
VARIANT_SIZES = ((1024, 640), (1400, 900))
SCREEN = (1400, 900)  # the virtual screen holds the largest variant


def _reexec_under_xvfb() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") or os.environ.get("_STYLESHELF_XVFB"):
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return
    env = dict(os.environ, _STYLESHELF_XVFB="1", QT_QPA_PLATFORM="xcb")
    cmd = [xvfb, "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24", sys.executable, *sys.argv]
    raise SystemExit(subprocess.call(cmd, env=env))


def _wait(app, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        app.processEvents()
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        time.sleep(0.02)


def _dataset(home: Path) -> Path:
    styles = REPO / "styles"
    folders = sorted(p for p in styles.iterdir() if p.is_dir()) if styles.is_dir() else []
    if folders:
        return folders[0]
    from PIL import Image, ImageDraw

    folder = home / "datasets" / "diagonal stripes"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(18):
        img = Image.new("RGB", (128, 128), [(236, 90, 80), (70, 140, 220), (250, 200, 60)][i % 3])
        draw = ImageDraw.Draw(img)
        for x in range(-128, 256, 16 + 2 * (i % 4)):
            draw.line([(x, 0), (x + 128, 128)], fill=(250, 250, 245), width=5)
        img.save(folder / f"stripes_{i:02d}.png")
        (folder / f"stripes_{i:02d}.txt").write_text(f"diagonal stripes, variation {i}\n", encoding="utf-8")
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    Image.new("RGB", (20, 20)).save(folder / "tiny.png")
    return folder


def _base(home: Path) -> str:
    from app.engine import facade

    demo = facade.default_base_model()
    if demo:
        return demo
    from app.engine.models.tiny import make_tiny

    return str(make_tiny(home / "models" / "tiny-sd15", "sd15", seed=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the training run")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument(
        "--train-timeout", type=float, default=3600, help="seconds to wait for the run (a busy 2-core machine is slow)"
    )
    args = parser.parse_args()
    _reexec_under_xvfb()
    home = Path(tempfile.mkdtemp(prefix="styleshelf-shots-"))
    os.environ["STYLESHELF_HOME"] = str(home)
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "qsettings"))
    from app.gui.main import create_app

    app = create_app([sys.argv[0]])
    from app.gui.app_window import MainWindow

    base = _base(home)
    win = MainWindow(load_engine=False)
    win.resize(*SIZE)
    win.show()
    win.set_base_model(base)
    win.shelf_vm.refresh()
    dataset = _dataset(home)
    win.train_tab.open_paths([str(dataset)])
    _wait(app, lambda: win.train_vm.dataset.rowCount() > 0, 120, "the dataset scan")
    DOCS.mkdir(exist_ok=True)

    # Train tab: a real short run on the base model.
    vm = win.train_vm
    # What a user gets: on the demo model the "demo model" preset is already picked (see TrainViewModel).
    vm.set_value("name", dataset.name.replace(" ", "-"))
    vm.set_value("trigger", "stripestyle")
    if not args.quick:
        # Samples as every preset draws them: a few rounds from the dataset's own captions.
        for key, value in {"steps": args.train_steps, "checkpoint_every": 0}.items():
            vm.set_value(key, value)
        done = []
        vm.runEnded.connect(lambda cancelled: done.append(cancelled))
        vm.start()
        _wait(app, lambda: bool(done), args.train_timeout, "the training run")
    _wait(
        app,
        lambda: all(
            win.train_vm.dataset.thumbnails.is_loaded(e.path)
            for e in win.train_vm.dataset.entries()[:12]
            if not e.skipped_reason
        ),
        60,
        "thumbnails",
    )
    win.tabs.setCurrentIndex(0)
    _settle(app)
    win.grab().save(str(DOCS / "train-tab.png"))

    # Generate tab: the same prompt and seeds without, then with a style on the stack.
    _wait(app, lambda: win.generate_vm.state == "ready", 600, "the base model to load")
    _wait(app, lambda: win.shelf_vm.busy == 0, 120, "the shelf scan")
    gvm = win.generate_vm
    tab = win.generate_tab
    tab.prompt.setPlainText("a yellow star on a green background")
    tab.batch.setValue(2)
    tab.steps.setValue(4 if args.quick else 20)
    tab.lock.setChecked(True)
    win.tabs.setCurrentIndex(1)
    finished = []
    gvm.finished.connect(lambda c: finished.append(c))
    model = win.shelf_vm.model
    for style_on in (False, True):
        tab.seed.setValue(7)
        if model.rowCount():
            model.set_enabled(0, style_on)
            model.set_weight(0, 1.0)
        finished.clear()
        gvm.generate()
        _wait(app, lambda: bool(finished), 600, "generation")
    tab.gallery.setCurrentIndex(gvm.gallery.index(0))
    _settle(app)
    win.grab().save(str(DOCS / "generate-tab.png"))
    print(f"wrote {DOCS / 'train-tab.png'} and {DOCS / 'generate-tab.png'}")
    for path in _variants(app, win):
        print(f"wrote {path}")
    gvm.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    return 0


def _variants(app, win) -> list[Path]:
    """Each tab at each size in each theme (the window's own theme switch, as a user would flip it)."""
    out = DOCS / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for theme in ("dark", "light"):
        win.set_theme(theme)
        for width, height in VARIANT_SIZES:
            win.resize(width, height)
            for index, tab in ((0, "train"), (1, "generate")):
                win.tabs.setCurrentIndex(index)
                _settle(app)
                path = out / f"{tab}-{width}x{height}-{theme}.png"
                win.grab().save(str(path))
                written.append(path)
    win.set_theme("dark")
    return written


def _settle(app) -> None:
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    raise SystemExit(main())
