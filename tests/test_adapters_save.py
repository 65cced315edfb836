"""save_adapter: kohya layout, metadata, and diffusers loading our file with every key matched, same output."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from safetensors import safe_open

from app.engine.adapters import save_adapter
from app.engine.errors import AdapterError
from app.engine.safetensors_file import data_sha256
from tests.helpers.peft_probes import (
    TE_TARGETS,
    UNET_TARGETS,
    add_random_lora,
    injected_modules,
    load_pipe,
    peft_sd,
    te_probe,
    unet_probe,
)


def _file_modules(path):
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
        meta = f.metadata()
    return keys, meta


def test_sd15_kohya_file_loads_in_diffusers_with_every_key_matched_and_identical_output(tiny_sd15, tmp_path):
    trained = load_pipe(tiny_sd15)
    add_random_lora(trained.unet, UNET_TARGETS, rank=4, alpha=8.0)
    expected = unet_probe(trained)
    base_out = unet_probe(load_pipe(tiny_sd15))
    assert (expected - base_out).abs().max() > 1e-3  # the LoRA really changes the UNet

    out = save_adapter(tmp_path / "style.safetensors", unet=peft_sd(trained.unet), rank=4, alpha=8.0,
                       family="sd1", title="Style", trigger_phrase="zxq style")  # fmt: skip
    keys, meta = _file_modules(out)
    modules = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in keys}
    assert all(k.startswith("lora_unet_") for k in keys)
    assert all(
        f"{m}.alpha" in keys and f"{m}.lora_down.weight" in keys and f"{m}.lora_up.weight" in keys for m in modules
    )
    assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0" in modules
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor(next(k for k in keys if k.endswith(".alpha"))).item() == 8.0
        assert all(f.get_tensor(k).dtype == torch.float32 for k in keys)

    loaded = load_pipe(tiny_sd15)
    loaded.load_lora_weights(str(out), adapter_name="style")
    # diffusers only warns about keys it could not place: count the modules that really got the LoRA.
    assert injected_modules(loaded.unet, "style") == injected_modules(trained.unet, "default")
    assert len(injected_modules(loaded.unet, "style")) == len(modules)
    got = unet_probe(loaded)
    assert torch.equal(got, expected), f"max diff {(got - expected).abs().max()}"

    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "8"
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_v2"] == "False"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.title"] == "Style" and meta["modelspec.trigger_phrase"] == "zxq style"
    assert meta["modelspec.hash_sha256"] == "0x" + data_sha256(out)
    assert meta["modelspec.prediction_type"] == "epsilon"


def test_sdxl_file_with_both_text_encoders_matches_in_diffusers(tiny_sdxl, tmp_path):
    trained = load_pipe(tiny_sdxl)
    add_random_lora(trained.unet, ["to_q", "to_k", "to_v", "to_out.0"], rank=4, alpha=4.0)
    add_random_lora(trained.text_encoder, TE_TARGETS, rank=2, alpha=1.0, seed=2)
    add_random_lora(trained.text_encoder_2, TE_TARGETS, rank=2, alpha=1.0, seed=3)
    exp_unet, exp_te1, exp_te2 = unet_probe(trained), te_probe(trained), te_probe(trained, "text_encoder_2")

    # Different ranks per part: alpha is per module, so the scale alpha/rank stays right for each.
    out = save_adapter(
        tmp_path / "xl.safetensors", unet=peft_sd(trained.unet), text_encoder=peft_sd(trained.text_encoder),
        text_encoder_2=peft_sd(trained.text_encoder_2), rank=4, alpha=4.0, text_encoder_alpha=1.0, family="sdxl",
        title="XL",
        extra_metadata={"ss_resolution": "(64, 64)", "ss_steps": "10"},
    )  # fmt: skip
    keys, meta = _file_modules(out)
    assert {k.split("_", 2)[1] for k in keys} == {"unet", "te1", "te2"}
    # The names every other tool uses, even though transformers 5 flattened CLIPTextModel's text_model level.
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in keys
    assert "lora_te2_text_model_encoder_layers_1_self_attn_out_proj.alpha" in keys
    assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight" in keys
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert meta["modelspec.resolution"] == "64x64" and meta["ss_steps"] == "10"

    loaded = load_pipe(tiny_sdxl)
    loaded.load_lora_weights(str(out), adapter_name="xl")
    for part in ("unet", "text_encoder", "text_encoder_2"):
        assert injected_modules(getattr(loaded, part), "xl") == injected_modules(getattr(trained, part), "default")
    assert torch.equal(unet_probe(loaded), exp_unet)
    assert torch.equal(te_probe(loaded), exp_te1)
    assert torch.equal(te_probe(loaded, "text_encoder_2"), exp_te2)


def test_thumbnail_is_a_small_data_uri_and_metadata_strings(tmp_path):
    from PIL import Image

    sd = {"down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.randn(2, 8),
          "down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.randn(8, 2)}  # fmt: skip
    img = Image.radial_gradient("L").resize((600, 400)).convert("RGB")
    out = save_adapter(tmp_path / "a.safetensors", unet=sd, rank=2, alpha=1, family="sd2-v", title="V",
                       thumbnail=img, description="soft light",
                       extra_metadata={"styleshelf.train_config": "rank = 2\n",
                                       "ss_tag_frequency": json.dumps({"a": {"x": 1}})})  # fmt: skip
    _, meta = _file_modules(out)
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["ss_v2"] == "True" and meta["ss_base_model_version"] == "sd_v2_v"
    assert meta["modelspec.prediction_type"] == "v" and meta["modelspec.resolution"] == "768x768"
    assert meta["styleshelf.train_config"] == "rank = 2\n"
    uri = meta["modelspec.thumbnail"]
    head, b64 = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    thumb = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert max(thumb.size) == 256 and thumb.size == (256, 171)


def test_bad_state_dicts_are_refused(tmp_path):
    good = {"a.lora_A.weight": torch.zeros(2, 4), "a.lora_B.weight": torch.zeros(4, 2)}
    with pytest.raises(AdapterError, match="family"):
        save_adapter(tmp_path / "x.safetensors", unet=good, rank=2, alpha=2, family="sd9", title="x")
    with pytest.raises(AdapterError, match="PEFT LoRA keys"):
        save_adapter(
            tmp_path / "x.safetensors", unet={"a.weight": torch.zeros(2)}, rank=2, alpha=2, family="sd1", title="x"
        )
    with pytest.raises(AdapterError, match="pairs missing"):
        save_adapter(tmp_path / "x.safetensors", unet={"a.lora_A.weight": torch.zeros(2, 4)}, rank=2, alpha=2,
                     family="sd1", title="x")  # fmt: skip
    with pytest.raises(AdapterError, match="second text encoder"):
        save_adapter(
            tmp_path / "x.safetensors", unet=good, text_encoder_2=good, rank=2, alpha=2, family="sd1", title="x"
        )
    assert not (tmp_path / "x.safetensors").exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left behind
