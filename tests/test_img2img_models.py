"""Which base does the work: a 9-channel inpainting UNet is detected and fed as such; switching modes and
toggling styles never loads the base again."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.engine.events import Log
from app.engine.generate import GenerateConfig, Generator
from app.engine.models.detect import inspect_model
from app.engine.paths import DEMO_MODEL_DIR
from app.engine.shelf.stack import StackEntry
from tests.helpers.pictures import circle_and_mask


@pytest.fixture(scope="module")
def tiny_inpaint(tmp_path_factory):
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd15-inpainting", "sd15", seed=0, inpainting=True)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    return circle_and_mask(tmp_path_factory.mktemp("pics"))


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
    inpainted = gen.generate(
        GenerateConfig(init_image=str(init), mask_image=str(mask), strength=1.0, **common), on_event=events.append
    )[0]
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


def test_single_file_inpainting_checkpoint_loads_and_inpaints_like_its_folder(
    tiny_inpaint, tiny_sd15, picture, tmp_path, monkeypatch
):
    """An A1111-style sd-v1-5-inpainting.safetensors (LDM layout, conv_in with 9 input channels), written by
    our own converter, read with a normal base's config folder (4 channels, as assets/model-configs/sd15)."""
    import json
    import tempfile

    import torch

    from app.cli import main
    from app.engine import facade
    from app.engine.models.loading import load_base

    single = tmp_path / "sd-v1-5-inpainting.safetensors"
    assert main(["models", "to-single-file", str(tiny_inpaint), str(single)]) == 0
    detection = inspect_model(single)
    assert detection.single_file and detection.family == "sd1" and "inpainting UNet" in detection.reason
    info = facade.inspect_base_model(str(single))
    assert (info.label, info.resolution, info.error) == ("SD 1.x inpainting", 512, "")  # a file: its family's size
    unet_config = tiny_sd15 / "unet" / "config.json"
    assert json.loads(unet_config.read_text())["in_channels"] == 4
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the patched config copy goes
    (tmp_path / "tmp").mkdir()
    events = []
    from_file = load_base(single, config=tiny_sd15, device="cpu", on_event=events.append)
    assert any("inpainting model, single file" in e.message for e in events), events
    assert from_file.pipe.unet.config.in_channels == 9
    assert json.loads(unet_config.read_text())["in_channels"] == 4, "the user's config folder is never changed"
    assert list((tmp_path / "tmp").iterdir()) == [], "the temporary config copy is removed"
    from_folder = load_base(tiny_inpaint, device="cpu")
    for component in ("unet", "vae", "text_encoder"):
        a, b = getattr(from_folder.pipe, component).state_dict(), getattr(from_file.pipe, component).state_dict()
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), component

    init, mask = picture
    config = GenerateConfig(
        prompt="a star",
        seed=1,
        steps=3,
        width=64,
        height=64,
        init_image=str(init),
        mask_image=str(mask),
        strength=1.0,
        out_dir=str(tmp_path / "out"),
        preview_every=0,
    )
    pictures = []
    for base in (from_folder, from_file):
        gen = Generator(base)
        seen = _unet_input_channels(gen)
        events.clear()
        result = gen.generate(config, on_event=events.append)[0]
        assert set(seen) == {9}, "the single file is used as an inpainting model"
        assert any(isinstance(e, Log) and "inpainting model (9-channel UNet)" in e.message for e in events)
        pictures.append(np.asarray(Image.open(result.path).convert("RGB"), dtype=np.int16))
    src = np.asarray(Image.open(init).convert("RGB"), dtype=np.int16)
    assert np.abs(pictures[0] - src)[24:40, 24:40].mean() > 10, "the model drew inside the mask"
    assert np.array_equal(pictures[0], pictures[1]), "the single file inpaints exactly as the folder does"


def test_sdxl_single_file_inpainting_checkpoint_loads_as_one(tiny_sdxl, tmp_path):
    from app.engine.models.loading import load_base
    from app.engine.models.single_file import export_single_file
    from app.engine.models.tiny import build_tiny_pipeline

    single = export_single_file(build_tiny_pipeline("sdxl", inpainting=True), tmp_path / "xl-inpaint.safetensors")
    assert inspect_model(single).details.get("inpainting") == "true"
    base = load_base(single, config=tiny_sdxl, device="cpu")
    assert base.family == "sdxl" and base.pipe.unet.config.in_channels == 9
    assert base.pipe.unet.conv_in.weight.abs().sum() > 0  # loaded from the file, not left empty


def test_release_size_inpainting_layout_reads_back_through_diffusers(tmp_path):
    """sd-v1-5-inpainting's real key shapes (zero-filled, sparse): detected from the header alone as SD1
    inpainting, and the bundled SD1.5 configs, patched to 9 channels, describe exactly its UNet."""
    import json

    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu

    from app.engine.models.config_folder import config_for_unet_channels
    from app.engine.models.skeleton_file import release_shapes, write_skeleton_checkpoint
    from app.engine.paths import MODEL_CONFIGS_DIR

    path = write_skeleton_checkpoint("sd1", tmp_path / "sd-v1-5-inpainting.safetensors", in_channels=9)
    detection = inspect_model(path)
    assert (detection.family, detection.details.get("inpainting")) == ("sd1", "true")
    shapes = release_shapes("sd1", in_channels=9)
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"] == (320, 9, 3, 3)
    ckpt = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    assert sfu.infer_diffusers_model_type(ckpt) == "inpainting"  # diffusers' own table agrees
    bundled = MODEL_CONFIGS_DIR / "sd15"
    with config_for_unet_channels(bundled, 9) as config:
        assert config != bundled and (config / "tokenizer" / "vocab.json").is_file()
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config / "unet"))
    assert not config.exists()
    assert json.loads((bundled / "unet" / "config.json").read_text())["in_channels"] == 4
    back = sfu.convert_ldm_unet_checkpoint(ckpt, dict(unet.config))
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in unet.state_dict().items()}


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
    for owner, name in (
        (ModelMixin, "from_pretrained"),
        (diffusers.DiffusionPipeline, "from_pretrained"),
        (diffusers.StableDiffusionPipeline, "from_single_file"),
    ):
        original = getattr(owner, name)
        monkeypatch.setattr(
            owner,
            name,
            classmethod(
                lambda cls, *a, _o=original, _n=name, **k: (
                    loads.append(f"{cls.__name__}.{_n}"),
                    _o.__func__(cls, *a, **k),
                )[1]
            ),
        )
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


def test_config_copy_changes_only_the_unet_channels_and_never_copies_weights(tmp_path):
    import json

    from app.engine.models.config_folder import config_for_unet_channels

    folder = tmp_path / "inpainting-model"
    (folder / "unet").mkdir(parents=True)
    (folder / "tokenizer").mkdir()
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 9, "sample_size": 64}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 1024)
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    with config_for_unet_channels(folder, 9) as same:
        assert same == folder  # already right: used as it is
    with config_for_unet_channels(folder, 4) as copy:  # a normal file read with an inpainting model's configs
        assert json.loads((copy / "unet" / "config.json").read_text()) == {"in_channels": 4, "sample_size": 64}
        assert (copy / "tokenizer" / "merges.txt").is_file()
        assert not (copy / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert not copy.exists()
    assert json.loads((folder / "unet" / "config.json").read_text())["in_channels"] == 9
