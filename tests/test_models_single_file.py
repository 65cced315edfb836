"""Single-file export (diffusers → original LDM layout) and loading it back, on tiny models and real shapes."""

from __future__ import annotations

import pytest
import torch

from app.engine.models.detect import detect_family, inspect_model
from app.engine.models.ldm_keys import clip_to_ldm, openclip_to_ldm, unet_to_ldm, vae_to_ldm
from app.engine.models.loading import load_base
from app.engine.models.single_file import export_single_file
from app.engine.paths import MODEL_CONFIGS_DIR


@pytest.fixture(scope="module")
def folders(tiny_sd15, tiny_sd2v, tiny_sdxl):
    """Each tiny diffusers folder loaded once: {family: (folder, BaseModel)}."""
    return {
        fam: (path, load_base(path, device="cpu"))
        for fam, path in (("sd1", tiny_sd15), ("sd2-v", tiny_sd2v), ("sdxl", tiny_sdxl))
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory, folders):
    """Each tiny model exported once as a single file: {family: (folder, file)}."""
    out = tmp_path_factory.mktemp("single")
    return {
        fam: (path, export_single_file(base.pipe, out / f"tiny-{fam}.safetensors"))
        for fam, (path, base) in folders.items()
    }


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("family", ["sd1", "sd2-v", "sdxl"])
def test_single_file_round_trip_gives_the_same_model(folders, exported, family):
    folder, file = exported[family]
    a = folders[family][1]
    b = load_base(file, config=folder, device="cpu")
    assert (a.family, b.family) == (family, family)
    assert b.single_file and not a.single_file and b.name == file.stem
    assert b.prediction_type == a.prediction_type
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if getattr(a.pipe, component, None) is not None:
            _assert_same_weights(getattr(a.pipe, component), getattr(b.pipe, component))

    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 7, a.pipe.unet.config.cross_attention_dim, generator=gen)
    extra = {}
    if family == "sdxl":
        pooled = a.pipe.text_encoder_2.config.projection_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, pooled, generator=gen),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        }
    with torch.no_grad():
        ya = a.pipe.unet(latents, torch.tensor([500]), context, **extra).sample
        yb = b.pipe.unet(latents, torch.tensor([500]), context, **extra).sample
        ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]])
        ta = a.pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        tb = b.pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
    # Same weights; CPU kernels may order float sums differently for differently allocated tensors.
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ta, tb, rtol=0, atol=0)
    assert ya.abs().mean() > 1e-3  # a real output, not zeros from unloaded weights
    if family == "sd1":  # the whole single-file pipeline (tokenizer, scheduler from the config folder) runs
        image = b.pipe(
            "a red circle",
            num_inference_steps=2,
            height=64,
            width=64,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).images
        assert image.shape == (1, 64, 64, 3)


def test_exported_keys_use_the_original_layout(exported):
    from safetensors import safe_open

    with safe_open(str(exported["sd1"][1]), "pt") as fh:
        keys = set(fh.keys())
        meta = fh.metadata()
        q = fh.get_slice("first_stage_model.encoder.mid.attn_1.q.weight").get_shape()
    # tiny SD1: 2 down blocks of 2 layers -> conv_in, 2+1 (down 0), 2 (down 1); down 1 has the attentions
    for key in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.input_blocks.4.1.proj_in.weight",
        "model.diffusion_model.input_blocks.4.0.in_layers.2.weight",
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.output_blocks.2.2.conv.weight",  # first up block has attentions -> slot 2
        "model.diffusion_model.out.2.weight",
        "model.diffusion_model.time_embed.0.weight",
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
        "first_stage_model.encoder.down.0.downsample.conv.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ):
        assert key in keys, key
    assert len(q) == 4 and q[2:] == [1, 1]  # VAE attention as 1x1 convolutions
    assert meta["modelspec.architecture"] == "stable-diffusion-v1"
    assert not any(k.startswith(("unet.", "vae.", "text_encoder.")) for k in keys)


def test_detection_from_exports(exported):
    assert detect_family(exported["sd1"][1]) == "sd1"
    assert detect_family(exported["sd2-v"][1]) == "sd2-v"  # from the ModelSpec prediction type
    assert detect_family(exported["sdxl"][1]) == "sdxl"
    assert "metadata" in inspect_model(exported["sd2-v"][1]).reason


def _strip_metadata(src, dst):
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(src)), str(dst))
    return dst


def test_sd2_epsilon_or_v_without_metadata(exported, tmp_path, tiny_sd2v):
    """No tensor tells SD2 epsilon from v: metadata, then the name, then the config, then epsilon."""
    src = exported["sd2-v"][1]
    plain = _strip_metadata(src, tmp_path / "model.safetensors")
    named = _strip_metadata(src, tmp_path / "v2-1_768-ema-pruned.safetensors")
    assert detect_family(plain) == "sd2"
    assert detect_family(named) == "sd2-v"
    # The caller's config decides when the file says nothing; an explicit family decides over everything.
    assert load_base(plain, config=tiny_sd2v).prediction_type == "v_prediction"
    forced = load_base(named, config=tiny_sd2v, family="sd2")
    assert (forced.family, forced.prediction_type) == ("sd2", "epsilon")
    assert forced.pipe.scheduler.config.prediction_type == "epsilon"


def test_export_from_a_loaded_pipeline_in_fp16(folders, tiny_sd15, tmp_path):
    from safetensors import safe_open

    base = folders["sd1"][1]
    out = export_single_file(base.pipe, tmp_path / "half.safetensors", dtype=torch.float16)
    with safe_open(str(out), "pt") as fh:
        assert {fh.get_slice(k).get_dtype() for k in fh.keys()} == {"F16"}
    half = load_base(out, config=tiny_sd15, dtype="fp32")
    w = base.pipe.unet.conv_in.weight
    torch.testing.assert_close(half.pipe.unet.conv_in.weight, w.half().float())


def test_cli_to_single_file_and_info(tiny_sd15, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cli.safetensors"
    assert main(["models", "to-single-file", str(tiny_sd15), str(out)]) == 0
    assert out.exists()
    assert main(["models", "info", str(out), "--load", "--config", str(tiny_sd15)]) == 0
    text = capsys.readouterr().out
    assert "sd1" in text and "single file" in text and "complete:    yes" in text and "loaded:      yes" in text


# ---- real shapes, on the meta device: our mapping, read back by diffusers' own converters, is lossless ----


def _meta_models(folder):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = MODEL_CONFIGS_DIR / folder
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        te2 = None
        if (root / "text_encoder_2").exists():
            te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
    return unet, vae, te, te2


@pytest.mark.parametrize("folder, kind", [("sd15", "v1"), ("sd21-v", "v2"), ("sdxl-base", "xl_base")])
def test_real_size_mapping_reads_back_through_diffusers(folder, kind):
    from diffusers.loaders import single_file_utils as sfu

    unet, vae, te, te2 = _meta_models(folder)
    ckpt = {}
    ckpt.update(unet_to_ldm(unet.state_dict(), unet.config.layers_per_block))
    ckpt.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    if te2 is not None:
        ckpt.update(clip_to_ldm(te.state_dict(), "conditioner.embedders.0.transformer."))
        ckpt.update(openclip_to_ldm(te2.state_dict(), "conditioner.embedders.1.model."))
    elif kind == "v2":
        ckpt.update(openclip_to_ldm(te.state_dict(), "cond_stage_model.model."))
    else:
        ckpt.update(clip_to_ldm(te.state_dict(), "cond_stage_model.transformer."))

    # Keys every SD tool checks to recognise the family (diffusers' own table, A1111 and ComfyUI use the same).
    assert sfu.infer_diffusers_model_type(ckpt) == kind
    back = sfu.convert_ldm_unet_checkpoint(ckpt, dict(unet.config))
    assert set(back) == set(unet.state_dict())
    assert all(back[k].shape == v.shape for k, v in unet.state_dict().items())
    back = sfu.convert_ldm_vae_checkpoint(ckpt, dict(vae.config))
    assert set(back) == set(vae.state_dict())
    assert all(back[k].shape == v.shape for k, v in vae.state_dict().items())
    if kind == "v2":
        back = sfu.convert_open_clip_checkpoint(te, ckpt, prefix="cond_stage_model.model.")
        assert {k.removeprefix("text_model.") for k in back} == set(te.state_dict())
    if te2 is not None:
        back = sfu.convert_open_clip_checkpoint(te2, ckpt, prefix="conditioner.embedders.1.model.")
        assert set(back) == set(te2.state_dict())
        assert all(back[k].shape == v.shape for k, v in te2.state_dict().items())
