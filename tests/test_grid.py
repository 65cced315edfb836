"""Comparison grids on the bundled demo model.

Cells equal `styleshelf generate`, labels drawn, streamed, cancellable.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.engine.events import CancelToken, Finished, ImageReady, Progress
from app.engine.generate.grid import GridConfig, read_grid, run_grid
from app.engine.generate.pngmeta import read_png_parameters, read_png_text
from app.engine.paths import BUNDLED_STYLES_DIR, DEMO_MODEL_DIR

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model_index.json").exists(), reason="demo model not built")
STRIPES = BUNDLED_STYLES_DIR / "diagonal-stripes" / "diagonal-stripes.safetensors"
PROMPT = "a red circle on a blue background"
COMMON = ["--base", str(DEMO_MODEL_DIR), "--prompt", PROMPT, "--steps", "2"]


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_strength_by_seed_grid_cells_equal_generate_and_labels_are_drawn(tmp_path, capsys):
    grid_png = tmp_path / "grid.png"
    # "stripes" is found on the shelf (the bundled diagonal-stripes) by a unique part of its name.
    assert main(["grid", *COMMON, "--x", "strength:stripes=0-1 [3]", "--y", "seed=1-3", "--out", str(grid_png)]) == 0
    printed = capsys.readouterr().out
    cells_dir = tmp_path / "grid-cells"
    assert f"wrote 9 cells to {cells_dir}" in printed and f"wrote {grid_png}" in printed

    # Each column equals `styleshelf generate` with that strength (seeds 1, 2, 3 = a batch of 3 from seed 1).
    for x, adapter in enumerate([[], ["--adapter", f"{STRIPES}:0.5"], ["--adapter", f"{STRIPES}:1"]]):
        out = tmp_path / f"gen{x}.png"
        assert main(["generate", *COMMON, *adapter, "--seed", "1", "--batch-count", "3", "--out", str(out)]) == 0
        for y in range(3):
            cell = cells_dir / f"cell-y{y + 1}-x{x + 1}.png"
            assert np.array_equal(pixels(cell), pixels(tmp_path / f"gen{x}-{y + 1}.png")), (x, y)
    # Strength 0 is the base model: the first column was compared with a run without any style.
    assert not np.array_equal(pixels(cells_dir / "cell-y1-x1.png"), pixels(cells_dir / "cell-y1-x3.png"))
    settings, stack = read_png_parameters(cells_dir / "cell-y2-x3.png")  # each cell has its full parameters
    assert settings["seed"] == 2 and settings["steps"] == 2 and stack[0].weight == 1.0

    grid = pixels(grid_png)
    record = read_grid(grid_png)
    lay = record.layout
    assert lay.scale == 3 and (lay.cell_width, lay.cell_height) == (192, 192)  # 64 px cells scaled up, nearest
    assert grid.shape == (lay.top + 3 * 192, lay.left + 3 * 192, 3)
    cell = pixels(cells_dir / "cell-y3-x2.png").repeat(3, axis=0).repeat(3, axis=1)
    assert np.array_equal(grid[lay.top + 2 * 192 : lay.top + 3 * 192, lay.left + 192 : lay.left + 2 * 192], cell)
    # The label bands hold dark text, different over each column and beside each row.
    tops = [grid[: lay.top, lay.left + x * 192 : lay.left + (x + 1) * 192] for x in range(3)]
    lefts = [grid[lay.top + y * 192 : lay.top + (y + 1) * 192, : lay.left] for y in range(3)]
    for band in tops + lefts:
        assert band.min() < 80 and band.max() == 255
    assert not np.array_equal(tops[0], tops[1]) and not np.array_equal(lefts[1], lefts[2])
    assert record.labels["X"] == ["stripes: 0", "stripes: 0.5", "stripes: 1"]
    assert record.labels["Y"] == ["Seed: 1", "Seed: 2", "Seed: 3"]

    # A1111 reads the grid's parameters; ours restore the whole comparison.
    params = read_png_text(grid_png)["parameters"]
    assert 'X Type: "Strength: stripes", X Values: "0-1 [3]", Y Type: Seed, Y Values: "1-3"' in params
    assert record.config.x == "strength:stripes=0-1 [3]" and record.config.y == "seed=1-3"
    assert record.config.generate.prompt == PROMPT and record.config.generate.steps == 2
    assert record.config.generate.out_dir == "" and record.config.generate.batch_count == 1
    assert record.cells[(1, 2, 0)] == cells_dir / "cell-y3-x2.png"


@pytest.fixture(scope="module")
def demo_generator():
    from app.engine.generate import Generator

    return Generator(str(DEMO_MODEL_DIR))


def test_grid_streams_cells_reuses_loaded_adapters_and_cancels(demo_generator, tmp_path):
    from app.engine.generate import GenerateConfig

    events = []
    loads_before = demo_generator.adapters.loads
    config = GridConfig(x=f"strength:{STRIPES}=0.5,1,0.25", y="seed=7,8", out=str(tmp_path / "g.png"),
                        generate=GenerateConfig(prompt=PROMPT, steps=2))  # fmt: skip
    result = run_grid(config, generator=demo_generator, on_event=events.append)
    images = [e for e in events if isinstance(e, ImageReady)]
    counts = [e.step for e in events if isinstance(e, Progress) and e.phase == "grid"]
    steps = [e.step for e in events if isinstance(e, Progress) and e.phase == "generate"]
    assert [e.index for e in images] == list(range(6)) and counts == list(range(1, 7))
    assert steps == list(range(1, 13)) and {
        e.total for e in events if isinstance(e, Progress) and e.phase == "generate"
    } == {12}
    # Each cell is announced as soon as it exists, before the next one starts sampling.
    first = events.index(images[0])
    assert all(isinstance(e, Progress) and e.step <= 2 for e in events[:first] if isinstance(e, Progress))
    assert demo_generator.adapters.loads - loads_before <= 1  # weights switched, never reloaded
    assert isinstance(events[-1], Finished) and events[-1].output == str(result.grid) and not result.cancelled
    assert json.loads(read_png_text(result.grid)["styleshelf"])["grid"]["shape"] == [3, 2, 1]

    cancel = CancelToken()
    events = []

    def stop_after_two(event):
        events.append(event)
        if isinstance(event, ImageReady) and event.index == 1:
            cancel.cancel()

    config.out = str(tmp_path / "cancelled.png")
    stopped = run_grid(config, generator=demo_generator, on_event=stop_after_two, cancel=cancel)
    assert stopped.cancelled and sorted(stopped.cells) == [0, 1] and stopped.grid is None
    assert not (tmp_path / "cancelled.png").exists() and len(list((tmp_path / "cancelled-cells").glob("*.png"))) == 2
    assert isinstance(events[-1], Finished) and events[-1].cancelled

    # Without a seed or a seed axis every cell shares one random seed, and the grid records it for a rerun.
    unseeded = GridConfig(x="cfg=3,7", out=str(tmp_path / "s.png"), generate=GenerateConfig(prompt=PROMPT, steps=1))
    shared = run_grid(unseeded, generator=demo_generator)
    seeds = {c.config.seed for c in shared.plan.cells}
    assert len(seeds) == 1 and read_grid(shared.grid).config.generate.seed == seeds.pop()


def test_grid_cli_refuses_bad_axes_before_loading(tmp_path, capsys):
    assert main(["grid", *COMMON, "--x", "strenght:stripes=0,1", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Unknown axis 'strenght'" in err[0]
    assert main(["grid", *COMMON, "--x", "style=stripes,nosuchstyle", "--out", str(tmp_path / "g.png")]) == 2
    assert "nosuchstyle" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
