"""How fast the desktop window appears, and how the dataset grid copes with hundreds of images.

Prints medians over several fresh processes (offscreen Qt):
- window shown: from interpreter start to the main window painted, engine not imported;
- dataset grid: time to put N images in the model and lay out the view, and to load the visible
  thumbnails (off the UI thread).

    .venv/bin/python bench/gui_startup.py [--runs 5] [--images 500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_WINDOW = r"""
import time, sys
t0 = time.perf_counter()
from app.gui.main import create_app
app = create_app([])
from app.gui.app_window import MainWindow
w = MainWindow(load_engine=False)
w.show()
app.processEvents()
shown = time.perf_counter() - t0
assert 'torch' not in sys.modules
print(shown)
"""

_GRID = r"""
import sys, time
from pathlib import Path
from app.gui.main import create_app
app = create_app([])
from app.engine.facade import DatasetEntry, DatasetSummary
from app.gui.dataset_model import DatasetModel, PathRole
from app.gui.dataset_view import DatasetGrid
folder = Path(sys.argv[1])
entries = [DatasetEntry(str(p), caption=p.stem) for p in sorted(folder.glob('*.jpg'))]
model = DatasetModel()
grid = DatasetGrid()
grid.setModel(model)
grid.resize(900, 700)
grid.show()
t0 = time.perf_counter()
model.set_summary(DatasetSummary(str(folder), entries))
app.processEvents()
laid_out = time.perf_counter() - t0
t1 = time.perf_counter()
while model.thumbnails.loaded_count() < 12:
    app.processEvents()
    time.sleep(0.001)
thumbs = time.perf_counter() - t1
t2 = time.perf_counter()
bar = grid.verticalScrollBar()
for v in range(0, bar.maximum() + 1, max(bar.pageStep() // 2, 1)):
    bar.setValue(v)
    app.processEvents()
scroll = time.perf_counter() - t2
print(laid_out, thumbs, scroll, model.thumbnails.loaded_count())
"""


def run(code: str, *args: str) -> list[float]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STYLESHELF_HOME=tempfile.mkdtemp())
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    return [float(x) for x in out.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    shown = [run(_WINDOW)[0] for _ in range(args.runs)]
    print(
        f"window shown (engine not loaded): median {statistics.median(shown) * 1000:.0f} ms "
        f"(min {min(shown) * 1000:.0f}, max {max(shown) * 1000:.0f}, {args.runs} runs)"
    )
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="grid-"))
    for i in range(args.images):
        Image.new("RGB", (1024, 768), (i % 255, 100, 200)).save(folder / f"img_{i:04d}.jpg", quality=85)
    rows = [run(_GRID, str(folder)) for _ in range(args.runs)]
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(
        f"dataset grid, {args.images} images of 1024x768: model+layout {med[0] * 1000:.0f} ms, "
        f"first 12 thumbnails {med[1] * 1000:.0f} ms, scroll top→bottom {med[2] * 1000:.0f} ms "
        f"({med[3]:.0f} thumbnails decoded, only what was visible)"
    )


if __name__ == "__main__":
    main()
