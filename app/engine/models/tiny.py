"""Tiny, randomly initialised SD-architecture models for tests and offline demos.

They have the real component classes and folder layout (UNet2DConditionModel, AutoencoderKL, CLIP text
encoder(s) with the real 49,408-token tokenizer, a scheduler), so every loading, training and LoRA code
path runs on them exactly as on a full model, in seconds, with no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from app.engine.models.te_layout import prefix_text_encoder_keys
from app.engine.paths import TOKENIZER_DIR

TINY_FAMILIES = ("sd15", "sd2", "sd2-v", "sdxl")

# SD's noise schedule (shared by SD1, SD2 and SDXL).
_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)


def _text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        max_position_embeddings=77,
        **extra,
    )


def _vae(seed: int, scaling_factor: float):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed + 1)
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def build_tiny_pipeline(family: str = "sd15", seed: int = 0, *, inpainting: bool = False):
    """Return an in-memory tiny pipeline of ``family`` (sd15, sd2, sd2-v or sdxl); ``inpainting`` gives it
    a 9-channel inpainting UNet (latents + mask + masked-picture latents)."""
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        PNDMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose from {', '.join(TINY_FAMILIES)}")
    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    if family == "sdxl":
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            **_unet_layout(inpainting),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,  # 32 pooled text dims + 6 size/crop ids × 8
            cross_attention_dim=64,  # the two text encoders' hidden states, concatenated
        )
        scheduler = EulerDiscreteScheduler(**_SCHEDULE, timestep_spacing="leading", steps_offset=1)
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(_text_config(hidden_act="quick_gelu", projection_dim=32))
        torch.manual_seed(seed + 3)
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(hidden_act="gelu", projection_dim=32))
        return StableDiffusionXLPipeline(
            vae=_vae(seed, 0.13025),
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
            force_zeros_for_empty_prompt=True,
        )
    sd2 = family in ("sd2", "sd2-v")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **_unet_layout(inpainting),
        cross_attention_dim=32,
        attention_head_dim=(2, 4) if sd2 else 8,
        use_linear_projection=sd2,
    )
    prediction = "v_prediction" if family == "sd2-v" else "epsilon"
    scheduler = PNDMScheduler(**_SCHEDULE, skip_prk_steps=True, steps_offset=1, prediction_type=prediction)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(hidden_act="gelu" if sd2 else "quick_gelu"))
    return StableDiffusionPipeline(
        vae=_vae(seed, 0.18215),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _unet_layout(inpainting: bool) -> dict:
    """What every tiny UNet shares: two levels of 32/64 channels, cross-attention on the lower one; 9 input
    channels (latents + mask + masked-image latents) for an inpainting model."""
    return dict(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def make_tiny(out_dir: str | Path, family: str = "sd15", seed: int = 0, *, inpainting: bool = False) -> Path:
    """Write a tiny model of ``family`` as a standard diffusers folder (safetensors) and return its path."""
    out_dir = Path(out_dir)
    pipe = build_tiny_pipeline(family, seed, inpainting=inpainting)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    prefix_text_encoder_keys(out_dir)  # the layout transformers 4.x reads too
    return out_dir
