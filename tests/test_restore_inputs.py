"""Restoring an image-to-image PNG finds its input picture and mask by hash, since the PNG names them by file
name and hash only: in the inputs folder, beside the PNG, in recently used folders; old PNGs with paths still read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.engine import facade
from app.engine.generate import GenerateConfig, Generator
from app.engine.generate.img2img import file_sha256
from app.engine.generate.pngmeta import OUR_CHUNK, png_bytes, read_png_text
from app.engine.paths import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def generator():
    return Generator(DEMO_MODEL_DIR)


def _pictures(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "sketch.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((4, 4, 30, 30), fill=255)
    mask.save(folder / "mask.png")
    return folder / "sketch.png", folder / "mask.png"


def _made(generator, init, mask, out):
    config = GenerateConfig(prompt="a hill", init_image=str(init), mask_image=str(mask), strength=0.4, mask_blur=2,
                            seed=1, steps=3, out_dir=str(out), preview_every=0)  # fmt: skip
    return generator.generate(config)[0].path


def test_inputs_are_found_again_in_the_folder_they_were_used_from_even_renamed(generator, tmp_path):
    init, mask = _pictures(tmp_path / "sketches")
    png = _made(generator, init, mask, tmp_path / "gallery")
    record = json.loads(read_png_text(png)[OUR_CHUNK])
    assert record["inputs"]["init_image"] == {
        "name": "sketch.png",
        "sha256": file_sha256(init),
        "bytes": init.stat().st_size,
    }
    assert record["config"]["init_image"] == "sketch.png" and record["config"]["mask_image"] == "mask.png"
    restored, missing = facade.read_png_restore(str(png))
    assert (restored.init_image, restored.mask_image, missing) == (str(init), str(mask), [])
    renamed = init.rename(init.with_name("sketch final.png"))  # the same picture under another name
    restored, missing = facade.read_png_restore(str(png))
    assert restored.init_image == str(renamed) and restored.mode == "inpaint" and missing == []


def test_a_picture_in_the_users_inputs_folder_or_beside_the_png_is_found(generator, tmp_path):
    init, mask = _pictures(tmp_path / "sketches")
    png = _made(generator, init, mask, tmp_path / "gallery")
    sent = tmp_path / "received"  # a teammate got the PNG and its inputs, on "another machine" (no recent folders)
    sent.mkdir()
    shutil.copy(png, sent / "result.png")
    shutil.copy(mask, sent / "mask.png")
    shutil.rmtree(tmp_path / "sketches")
    inputs = facade.input_pictures_dir()
    inputs.mkdir(parents=True, exist_ok=True)
    pasted = inputs / "pasted-1234.png"
    restored, missing = facade.read_png_restore(str(sent / "result.png"))
    assert restored.init_image == "sketch.png" and restored.mask_image == str(sent / "mask.png")
    assert missing == [f"Input image sketch.png (sha256 {record_hash(png)[:12]}…) not found — drop it on the preview."]
    _pictures(tmp_path / "again")
    shutil.copy(tmp_path / "again" / "sketch.png", pasted)
    restored, missing = facade.read_png_restore(str(sent / "result.png"))
    assert restored.init_image == str(pasted) and missing == []


def record_hash(png):
    return json.loads(read_png_text(png)[OUR_CHUNK])["inputs"]["init_image"]["sha256"]


def test_an_old_png_with_absolute_paths_still_restores_its_inputs_and_stack(tmp_path):
    from helpers.tiny_lora import write_tiny_lora

    from app.engine.generate import read_png_parameters

    init, mask = _pictures(tmp_path / "old place")
    style = write_tiny_lora(tmp_path / "styles" / "ink.safetensors", seed=3)
    from app.engine.generate.identity import adapter_identity

    sha = adapter_identity(style).tensor_sha256
    record = {  # as StyleShelf wrote it before PNGs stopped naming paths
        "format": 1, "app": "StyleShelf", "prompt_used": "a hill",
        "config": {"prompt": "a hill", "seed": 1, "steps": 3, "init_image": str(init), "mask_image": str(mask),
                   "strength": 0.4},
        "inputs": {"mode": "inpaint",
                   "init_image": {"name": "sketch.png", "path": str(init), "sha256": file_sha256(init)},
                   "mask": {"name": "mask.png", "path": str(mask), "sha256": file_sha256(mask)}},
        "stack": [{"path": str(style), "enabled": True, "weight": 0.5, "name": "ink", "sha256": sha}],
    }  # fmt: skip
    old = tmp_path / "elsewhere" / "old.png"
    old.parent.mkdir()
    old.write_bytes(
        png_bytes(Image.new("RGB", (8, 8)), "a hill\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 1", record)
    )
    settings, entries = read_png_parameters(old)
    assert settings["init_image"] == str(init) and settings["mask_image"] == str(mask)
    assert "missing_inputs" not in settings and settings["strength"] == 0.4
    assert [(e.path, e.weight, e.sha256) for e in entries] == [(str(style), 0.5, sha)]
