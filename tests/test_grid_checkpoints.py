"""Training checkpoints as adapter files (train --export-checkpoints, shelf from-checkpoint) and on a grid axis."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from app.cli import main


@pytest.fixture
def run(checkpoint_run):
    return checkpoint_run  # tests/conftest.py: a 6-step run keeping checkpoints 2, 4 and 6, exported by train


def _tensors(path):
    return load_file(str(path))


def test_train_exports_every_kept_checkpoint_as_a_loadable_adapter(run, tiny_sd15, capsys, caplog):
    from diffusers import StableDiffusionPipeline
    from peft.tuners.lora import LoraLayer

    run_dir = run.with_name("stripy.checkpoints")
    files = sorted(run_dir.glob("stripy-step-*.safetensors"))
    assert [f.name for f in files] == [f"stripy-step-00000{s}.safetensors" for s in (2, 4, 6)]
    for step, path in zip((2, 4, 6), files):
        with safe_open(str(path), "pt") as f:
            meta, keys = f.metadata(), list(f.keys())
        assert meta["ss_steps"] == str(step) and meta["modelspec.trigger_phrase"] == "stripy"
        assert meta["ss_num_train_images"] == "6" and meta["ss_base_model_version"] == "sd_v1"
        assert "styleshelf.validation" not in meta  # the final adapter's figures are not this step's
        assert keys and all(k.startswith("lora_unet_") for k in keys)
        pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15), safety_checker=None)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            pipe.load_lora_weights(str(path), adapter_name="ckpt")
        assert not [r for r in caplog.records if "unexpected" in r.getMessage().lower()]
        loaded = [m for m in pipe.unet.modules() if isinstance(m, LoraLayer) and "ckpt" in m.lora_A]
        assert len(loaded) * 3 == len(keys)  # zero unmatched: every module of the file found its layer
    # The last checkpoint is the finished adapter's weights; earlier ones differ.
    final, last, first = _tensors(run), _tensors(files[2]), _tensors(files[0])
    assert final.keys() == last.keys() and all(np.array_equal(final[k], last[k]) for k in final)
    assert any(not np.array_equal(final[k], first[k]) for k in final)


def test_shelf_from_checkpoint_writes_one_step_and_refuses_a_missing_one(run, tmp_path, capsys):
    out = tmp_path / "promoted.safetensors"
    assert main(["shelf", "from-checkpoint", str(run.with_name("stripy.checkpoints")), "step-000004",
                 "--out", str(out), "--title", "Stripy 4"]) == 0  # fmt: skip
    assert f"wrote {out} (checkpoint at step 4)" in capsys.readouterr().out
    exported = _tensors(run.with_name("stripy.checkpoints") / "stripy-step-000004.safetensors")
    mine = _tensors(out)
    assert all(np.array_equal(mine[k], exported[k]) for k in exported)
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["modelspec.title"] == "Stripy 4" and f.metadata()["ss_steps"] == "4"
    assert main(["shelf", "from-checkpoint", str(run), "3", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "No checkpoint at step 3" in err and "Kept: 2, 4, 6" in err


def test_checkpoint_axis_puts_every_checkpoint_and_the_base_side_by_side(run, tiny_sd15, tmp_path):
    grid = tmp_path / "ckpt.png"
    assert main(["grid", "--base", str(tiny_sd15), "--prompt", "a red boat", "--steps", "2", "--width", "64",
                 "--height", "64", "--seed", "3", "--x", f"checkpoint:{run}=base,all",
                 "--out", str(grid)]) == 0  # fmt: skip
    from app.engine.generate.grid import read_grid

    record = read_grid(grid)
    assert record.labels["X"] == ["base", "step 2", "step 4", "step 6", "final"]

    def cell(x):
        with Image.open(record.cells[(x, 0, 0)]) as img:
            return np.asarray(img)

    assert np.array_equal(cell(3), cell(4))  # step 6 is the final adapter, bit for bit
    assert not np.array_equal(cell(1), cell(4)) and not np.array_equal(cell(0), cell(1))


def test_the_shelf_does_not_list_a_runs_checkpoints(run):
    from app.engine.shelf.library import Library

    # A run trained into the shelf folder (the app's default) keeps step-*/lora.safetensors and the exports there.
    assert len(list(run.with_name("stripy.checkpoints").rglob("*.safetensors"))) == 9
    names = [e.path.name for e in Library(user_folder=run.parent, bundled_folder=None).scan(with_hashes=False)]
    assert names == ["stripy.safetensors"]


def test_keep_this_one_makes_a_checkpoint_the_style_on_the_shelf(run, tmp_path):
    import shutil

    from app.engine import facade
    from app.engine.generate.grid_axes import parse_axis
    from app.engine.shelf.library import Library

    copy = tmp_path / "shelf" / "stripy.safetensors"  # a copy of the run, so the other tests keep theirs
    shutil.copytree(run.with_name("stripy.checkpoints"), copy.with_name("stripy.checkpoints"))
    shutil.copy(run, copy)
    assert facade.keep_checkpoint(str(copy), 2) == str(copy)
    kept, step2 = _tensors(copy), _tensors(copy.with_name("stripy.checkpoints") / "stripy-step-000002.safetensors")
    assert all(np.array_equal(kept[k], step2[k]) for k in step2)
    [entry] = Library(user_folder=copy.parent, bundled_folder=None).scan(with_hashes=False)
    assert entry.path == copy and entry.info.metadata["ss_steps"] == "2" and entry.title == "my-style"
    x, y = facade.checkpoint_axes(
        str(copy), ["stripes one", "stripy, stripes two", "stripes one", "a, b"], "", prompts=3
    )  # the trigger comes from the file; captions are distinct
    assert parse_axis(x).values == ("base", "all")
    assert parse_axis(y).values == ("stripy, stripes one", "stripy, stripes two", "stripy, a, b")


def test_each_checkpoints_held_out_loss_is_measured_as_the_run_measures_it(run):
    import json

    from app.engine.train.checkpoint_validation import validate_checkpoints

    with safe_open(str(run), "pt") as f:
        at_end = json.loads(f.metadata()["styleshelf.validation"])  # the run's own figures, for its last step
    figures = validate_checkpoints(run)
    assert sorted(figures) == [2, 4, 6]
    base, last = figures[6]
    assert base == pytest.approx(at_end["validation_loss_base"], rel=1e-5)
    assert last == pytest.approx(at_end["validation_loss_adapter"], rel=1e-5)
    assert {round(b, 6) for b, _ in figures.values()} == {round(base, 6)}  # one base, the same images and noise
    assert figures[2][1] != figures[4][1] != figures[6][1]
