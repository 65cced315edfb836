"""Half-precision runs encode the input picture with the VAE in float32 when its config says ``force_upcast``.

SDXL's VAE overflows in fp16. diffusers guards its own encodes and decodes, but we encode the init image and
the masked picture ourselves and hand the pipeline latents, so the guard is ours (img2img._float32_vae).
fp16 runs on the CPU for these tiny models, so the real code path is exercised here.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from app.engine.generate import GenerateConfig, Generator
from app.engine.generate.img2img import Source, _Run
from app.engine.models.loading import load_base
from tests.helpers.pictures import circle_and_mask


@pytest.fixture(scope="module")
def half_sdxl(tiny_sdxl):
    gen = Generator(load_base(tiny_sdxl, device="cpu", dtype="fp16"))
    assert gen.pipe.vae.config.force_upcast and gen.pipe.vae.dtype == torch.float16
    return gen


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    return circle_and_mask(tmp_path_factory.mktemp("pics"))


def _record_input_dtypes(module) -> tuple[list[torch.dtype], object]:
    seen: list[torch.dtype] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    return seen, handle


@pytest.fixture
def no_force_upcast(half_sdxl):
    vae = half_sdxl.pipe.vae
    vae.register_to_config(force_upcast=False)
    yield
    vae.register_to_config(force_upcast=True)


def test_fp16_img2img_and_inpaint_encode_in_float32(half_sdxl, picture, tmp_path):
    vae = half_sdxl.pipe.vae
    encoder, handle = _record_input_dtypes(vae.encoder)
    decoder, handle2 = _record_input_dtypes(vae.decoder)
    init, mask = picture
    common = dict(prompt="a star", seed=1, steps=4, width=64, height=64, out_dir=str(tmp_path), preview_every=0)
    try:
        half_sdxl.generate(GenerateConfig(init_image=str(init), strength=0.5, **common))
        assert encoder == [torch.float32], "the init image is encoded in float32"
        encoder.clear()
        half_sdxl.generate(GenerateConfig(init_image=str(init), mask_image=str(mask), strength=1.0, **common))
        assert encoder == [torch.float32]
        encoder.clear()
        decoder.clear()
        # steps × strength < 1: no denoising, our own decode of the round trip
        half_sdxl.generate(GenerateConfig(init_image=str(init), strength=0.1, **common))
        assert encoder == [torch.float32] and decoder == [torch.float32]
    finally:
        handle.remove()
        handle2.remove()
    assert vae.dtype == torch.float16, "the VAE goes back to the run's precision"
    assert half_sdxl.pipe.unet.dtype == torch.float16


def test_without_force_upcast_the_vae_keeps_its_precision(half_sdxl, picture, tmp_path, no_force_upcast):
    """The decision follows the VAE's config (this also shows the hook above would catch an fp16 encode)."""
    encoder, handle = _record_input_dtypes(half_sdxl.pipe.vae.encoder)
    try:
        half_sdxl.generate(
            GenerateConfig(
                prompt="a star",
                seed=1,
                steps=4,
                width=64,
                height=64,
                strength=0.5,
                init_image=str(picture[0]),
                out_dir=str(tmp_path),
                preview_every=0,
            )
        )
    finally:
        handle.remove()
    assert encoder == [torch.float16]


def test_an_encoder_that_overflows_in_fp16_still_gives_finite_latents(half_sdxl, picture, monkeypatch):
    """What SDXL's VAE does in fp16, reproduced: scale conv_in so its activations pass fp16's 65,504 while
    its weights still fit (the encoder's last GroupNorm brings the values back down in float32). Encoded in
    fp16 the latents are inf/NaN; ours are finite and handed back in fp16."""
    vae = half_sdxl.pipe.vae
    conv = vae.encoder.conv_in
    original = conv.weight.data.clone(), conv.bias.data.clone()
    source = Source(Image.open(picture[0]).convert("RGB"), 64, 64, 0.5)
    run = _Run(source, half_sdxl.pipe)
    try:
        conv.weight.data.mul_(2e5)
        conv.bias.data.mul_(2e5)
        assert torch.isfinite(conv.weight).all() and torch.isfinite(conv.bias).all()
        latents = run._encode(source.image)
        assert latents.dtype == torch.float16 and torch.isfinite(latents).all()
        assert latents.float().abs().mean() > 1e-3
        vae.register_to_config(force_upcast=False)
        assert not torch.isfinite(run._encode(source.image)).all(), "fp16 overflows: the test can fail"
    finally:
        vae.register_to_config(force_upcast=True)
        conv.weight.data.copy_(original[0])
        conv.bias.data.copy_(original[1])
