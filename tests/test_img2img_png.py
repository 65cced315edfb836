"""Image-to-image and inpainting settings in PNGs: A1111's keys, our record with the input's hash, and what a
reader is told when the input picture is not on this machine."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.engine import facade
from app.engine.generate import GenerateConfig, Generator, parse_a1111, read_png_parameters
from app.engine.generate.img2img import file_sha256
from app.engine.generate.input_meta import MISSING_KEY
from app.engine.generate.pngmeta import read_png_text
from app.engine.paths import DEMO_MODEL_DIR
from tests.helpers.pngs import a1111_png
from tools.demo.scenes import Scene, render


@pytest.fixture(scope="module")
def inpainted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inpaint")
    init, mask = folder / "my sketch.png", folder / "mask.png"
    render(Scene("circle", "red", "blue", "large")).save(init)
    m = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(m).ellipse((10, 10, 54, 54), fill=255)
    m.save(mask)
    gen = Generator(DEMO_MODEL_DIR)
    config = GenerateConfig(
        prompt="a yellow star on a blue background",
        init_image=str(init),
        mask_image=str(mask),
        strength=0.55,
        mask_blur=3,
        inpaint_area="Only masked",
        inpaint_padding=6,
        masked_content="fill",
        seed=5,
        steps=6,
        out_dir=str(folder),
        preview_every=0,
    )
    (image,) = gen.generate(config)
    return gen, config, image, init, mask


def test_a1111_keys_and_our_record_with_the_inputs_hashes(inpainted):
    _gen, _config, image, init, mask = inpainted
    fields = parse_a1111(read_png_text(image.path)["parameters"])["fields"]
    assert fields["Denoising strength"] == "0.55" and fields["Mask blur"] == "3"
    assert fields["Inpaint area"] == "Only masked" and fields["Masked area padding"] == "6"
    assert fields["Masked content"] == "fill" and "Resize mode" not in fields  # the crop has its own shape
    import json

    record = json.loads(read_png_text(image.path)["styleshelf"])
    assert record["inputs"]["mode"] == "inpaint"
    assert record["inputs"]["init_image"]["sha256"] == file_sha256(init)
    assert record["inputs"]["mask"]["sha256"] == file_sha256(mask)
    assert record["inputs"]["init_image"]["name"] == "my sketch.png"


def test_reading_restores_the_mode_and_settings_and_regenerates_the_same_picture(inpainted, tmp_path):
    gen, config, image, init, mask = inpainted
    settings, _entries = read_png_parameters(image.path)
    assert MISSING_KEY not in settings
    for key in ("init_image", "mask_image"):
        assert settings[key] == str(getattr(config, key))
    for key in ("strength", "mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "resize_mode"):
        assert settings[key] == getattr(config, key), key
    restored, missing = facade.read_png_restore(str(image.path))
    assert restored.mode == "inpaint" and missing == []
    (again,) = gen.generate(GenerateConfig(**settings, out_dir=str(tmp_path), preview_every=0))
    assert np.array_equal(np.asarray(Image.open(again.path)), np.asarray(Image.open(image.path)))


def test_a_missing_or_changed_input_is_named_and_the_mode_still_comes_back(inpainted, tmp_path):
    _gen, _config, image, init, mask = inpainted
    moved = tmp_path / "elsewhere.png"
    shutil.move(init, moved)
    try:
        restored, missing = facade.read_png_restore(str(image.path))
        assert restored.mode == "inpaint" and restored.strength == 0.55
        expected = f"Input image my sketch.png (sha256 {file_sha256(moved)[:12]}…) not found — drop it on the preview."
        assert missing == [expected]
        Image.new("RGB", (64, 64), (1, 2, 3)).save(init)  # another picture under the same name
        _restored, missing = facade.read_png_restore(str(image.path))
        assert "has changed" in missing[0]
    finally:
        shutil.move(moved, init)
    assert facade.read_png_restore(str(image.path))[1] == []


def test_a1111_img2img_png_restores_strength_and_inpaint_settings(tmp_path):
    text = (
        "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: abc, "
        "Denoising strength: 0.45, Mask blur: 6, Inpaint area: Only masked, Masked area padding: 40, "
        "Masked content: latent noise, Version: v1.10.1"
    )
    settings, _ = read_png_parameters(a1111_png(tmp_path / "a.png", text))
    assert settings["strength"] == 0.45 and settings["mask_blur"] == 6 and settings["inpaint_padding"] == 40
    assert settings["inpaint_area"] == "Only masked" and settings["masked_content"] == "latent noise"
    assert "input image and a mask" in settings[MISSING_KEY][0]
    hires = (
        "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
        "Denoising strength: 0.7, Hires upscale: 2, Hires upscaler: Latent"
    )
    settings, _ = read_png_parameters(a1111_png(tmp_path / "b.png", hires))
    assert "strength" not in settings and MISSING_KEY not in settings, "a hires-fix pass is not image to image"


def test_text_to_image_png_restores_text_to_image(tmp_path):
    text = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"
    restored, missing = facade.read_png_restore(str(a1111_png(tmp_path / "t.png", text)))
    assert restored.mode == "txt2img" and missing == []
