"""Which base does the work: a 9-channel inpainting UNet is detected and fed as such; switching modes and
toggling styles never loads the base again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.engine.events import Log
from app.engine.generate import GenerateConfig, Generator
from app.engine.models.detect import inspect_model
from app.engine.paths import DEMO_MODEL_DIR
from app.engine.shelf.stack import StackEntry


@pytest.fixture(scope="module")
def tiny_inpaint(tmp_path_factory):
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd15-inpainting", "sd15", seed=0, inpainting=True)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pics")
    img = Image.new("RGB", (64, 64), (35, 75, 220))
    ImageDraw.Draw(img).ellipse((16, 16, 48, 48), fill=(220, 30, 35))
    img.save(folder / "in.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 20, 44, 44), fill=255)
    mask.save(folder / "mask.png")
    return folder / "in.png", folder / "mask.png"


def _unet_input_channels(gen: Generator) -> list[int]:
    seen: list[int] = []
    gen.pipe.unet.register_forward_pre_hook(lambda _m, args, kwargs=None: seen.append(int(args[0].shape[1])))
    return seen


def test_nine_channel_unet_is_detected_and_used_as_an_inpainting_model(tiny_inpaint, picture, tmp_path):
    detection = inspect_model(tiny_inpaint)
    assert detection.family == "sd1" and "inpainting UNet" in detection.reason
    from app.engine import facade

    assert facade.inspect_base_model(str(tiny_inpaint)).label == "SD 1.x inpainting"  # the window's badge
    gen = Generator(tiny_inpaint)
    seen = _unet_input_channels(gen)
    events = []
    init, mask = picture
    common = dict(prompt="a star", seed=1, steps=3, out_dir=str(tmp_path), preview_every=0)
    inpainted = gen.generate(GenerateConfig(init_image=str(init), mask_image=str(mask), strength=1.0, **common),
                             on_event=events.append)[0]
    assert any(isinstance(e, Log) and "inpainting model (9-channel UNet)" in e.message for e in events)
    assert seen and set(seen) == {9}, "latents + mask + masked-picture latents reach the UNet"
    out = np.asarray(Image.open(inpainted.path).convert("RGB"), dtype=np.int16)
    src = np.asarray(Image.open(init).convert("RGB"), dtype=np.int16)
    assert np.abs(out - src)[:8].max() == 0, "far from the mask the input is pasted back"
    assert np.abs(out - src)[24:40, 24:40].mean() > 10, "inside the mask the model drew"
    # Text to image and plain image to image also run on it (A1111: everything masked).
    seen.clear()
    assert len(gen.generate(GenerateConfig(**common))) == 1
    assert len(gen.generate(GenerateConfig(init_image=str(init), strength=0.5, **common))) == 1
    assert set(seen) == {9}


def test_single_file_inpainting_checkpoint_says_how_to_open_it(tmp_path):
    from test_models_refusals import _refused, _write

    path = _write(tmp_path / "inpaint.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)})
    assert "diffusers folders" in _refused(path, "inpainting")


def test_training_refuses_an_inpainting_base(tiny_inpaint):
    from app.engine.errors import ModelLoadError
    from app.engine.train.model import load_training_base

    with pytest.raises(ModelLoadError, match="normal .text-to-image. base"):
        load_training_base(tiny_inpaint)


def test_modes_and_style_toggles_never_load_the_base_again(picture, tmp_path, monkeypatch):
    """Text to image → img2img with a style → without it → inpainting: the same loaded modules throughout."""
    import diffusers
    from diffusers.models.modeling_utils import ModelMixin

    gen = Generator(DEMO_MODEL_DIR)
    loads: list[str] = []
    for owner, name in ((ModelMixin, "from_pretrained"), (diffusers.DiffusionPipeline, "from_pretrained"),
                        (diffusers.StableDiffusionPipeline, "from_single_file")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, classmethod(
            lambda cls, *a, _o=original, _n=name, **k: (loads.append(f"{cls.__name__}.{_n}"), _o.__func__(cls, *a, **k))[1]
        ))
    modules = (gen.pipe.unet, gen.pipe.vae, gen.pipe.text_encoder)
    init, mask = picture
    stripes = StackEntry("styles/diagonal-stripes/diagonal-stripes.safetensors")
    common = dict(prompt="a red circle on a blue background", seed=2, steps=6, out_dir=str(tmp_path), preview_every=0)
    styled = gen.generate(GenerateConfig(init_image=str(init), strength=0.6, stack=[stripes], **common))[0]
    stripes.enabled = False
    plain = gen.generate(GenerateConfig(init_image=str(init), strength=0.6, stack=[stripes], **common))[0]
    stripes.enabled = True
    again = gen.generate(GenerateConfig(init_image=str(init), strength=0.6, stack=[stripes], **common))[0]
    gen.generate(GenerateConfig(init_image=str(init), mask_image=str(mask), strength=0.6, **common))
    gen.generate(GenerateConfig(**common))
    assert loads == [], f"the base or a component was loaded again: {loads}"
    assert (gen.pipe.unet, gen.pipe.vae, gen.pipe.text_encoder) == modules

    def px(r):
        return np.asarray(Image.open(r.path).convert("RGB"), dtype=np.int16)

    assert np.abs(px(styled) - px(plain)).mean() > 3, "the toggle reached the img2img pipeline"
    assert np.array_equal(px(styled), px(again)), "toggling back gives the same picture"
    diffusers.AutoencoderKL.from_pretrained(DEMO_MODEL_DIR / "vae")
    assert loads == ["AutoencoderKL.from_pretrained"], "the counter sees a real load (the check above is not vacuous)"


@pytest.mark.parametrize("family", ["tiny_sdxl", "tiny_sd2v"])
def test_other_families_restyle_and_inpaint(family, picture, tmp_path, request):
    gen = Generator(request.getfixturevalue(family))
    init, mask = picture
    common = dict(prompt="a star", seed=1, steps=4, out_dir=str(tmp_path), preview_every=0, width=64, height=64)
    src = np.asarray(Image.open(init).convert("RGB"), dtype=np.int16)
    restyled = gen.generate(GenerateConfig(init_image=str(init), strength=0.5, **common))[0]
    inpainted = gen.generate(GenerateConfig(init_image=str(init), mask_image=str(mask), strength=1.0, **common))[0]
    out = np.asarray(Image.open(inpainted.path).convert("RGB"), dtype=np.int16)
    assert Image.open(restyled.path).size == (64, 64) and "Denoising strength: 0.5" in restyled.parameters
    assert np.abs(out - src)[:8].max() == 0 and np.abs(out - src)[26:38, 26:38].mean() > 5
