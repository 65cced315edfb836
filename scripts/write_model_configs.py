"""Write the architecture config skeletons under assets/model-configs/ (JSON and tokenizer files, no weights).

A user's single-file checkpoint carries weights only; diffusers' ``from_single_file`` needs the diffusers
folder layout of configs next to it, and without a local ``config=`` it tries to download them from the
hub. These skeletons hold the values of the published diffusers configs of

    sd15       runwayml/stable-diffusion-v1-5         (epsilon, 512)
    sd21-base  stabilityai/stable-diffusion-2-1-base  (epsilon, 512)
    sd21-v     stabilityai/stable-diffusion-2-1       (v_prediction, 768)
    sdxl-base  stabilityai/stable-diffusion-xl-base-1.0

with two deliberate differences: ``safety_checker`` and ``feature_extractor`` are null (we ship no
safety-checker weights, and a non-null entry makes the loader look for them), and the tokenizer files are
our offline copy in assets/clip-tokenizer/ (SD2's and SDXL's OpenCLIP tokenizer pads with "!").

Run ``python scripts/write_model_configs.py`` after changing a value here; the output is committed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.engine.paths import MODEL_CONFIGS_DIR, TOKENIZER_DIR  # noqa: E402

DIFFUSERS_VERSION = "0.42.1"

_SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def _sd_unet(cross_attention_dim: int, head_dim, linear: bool, sample_size: int, upcast: bool) -> dict:
    return {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        "act_fn": "silu",
        "attention_head_dim": head_dim,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": False,
        "cross_attention_dim": cross_attention_dim,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "dual_cross_attention": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "num_class_embeds": None,
        "only_cross_attention": False,
        "out_channels": 4,
        "sample_size": sample_size,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "upcast_attention": upcast,
        "use_linear_projection": linear,
    }


def _vae(sample_size: int, scaling_factor: float | None = None, force_upcast: bool | None = None) -> dict:
    cfg = {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": DIFFUSERS_VERSION,
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": sample_size,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    }
    if scaling_factor is not None:
        cfg["scaling_factor"] = scaling_factor
    if force_upcast is not None:
        cfg["force_upcast"] = force_upcast
    return cfg


def _clip_text(arch: str, hidden: int, inter: int, heads: int, layers: int, act: str, proj: int) -> dict:
    return {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 2,
        "hidden_act": act,
        "hidden_size": hidden,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 1,
        "projection_dim": proj,
        "torch_dtype": "float32",
        "vocab_size": 49408,
    }


# OpenAI CLIP ViT-L/14 text tower (SD1 and SDXL's first encoder).
CLIP_L = _clip_text("CLIPTextModel", 768, 3072, 12, 12, "quick_gelu", 768)
# OpenCLIP ViT-H/14 text tower as SD2 uses it: the last of 24 layers is dropped (SD2 reads the penultimate).
OPEN_CLIP_H = _clip_text("CLIPTextModel", 1024, 4096, 16, 23, "gelu", 512)
# OpenCLIP ViT-bigG/14 text tower with its projection (SDXL's second encoder).
OPEN_CLIP_BIGG = _clip_text("CLIPTextModelWithProjection", 1280, 5120, 20, 32, "gelu", 1280)


def _sd_index(scheduler: str) -> dict:
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", scheduler],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _scheduler(cls: str, **extra) -> dict:
    return {"_class_name": cls, "_diffusers_version": DIFFUSERS_VERSION, **_SCHEDULE, **extra}


SDXL_UNET = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": DIFFUSERS_VERSION,
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 2048,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    # 1280 pooled text dims + 6 size/crop conditioning ids × 256
    "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": True,
}

SDXL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": DIFFUSERS_VERSION,
    "feature_extractor": [None, None],
    "force_zeros_for_empty_prompt": True,
    "image_encoder": [None, None],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

EULER_EXTRA = {
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}

# folder -> {relative file: JSON content}; "tokenizer*" entries name the pad token instead.
CONFIGS: dict[str, dict[str, object]] = {
    "sd15": {
        "model_index.json": _sd_index("PNDMScheduler"),
        "unet/config.json": _sd_unet(768, 8, linear=False, sample_size=64, upcast=False),
        "vae/config.json": _vae(512),
        "text_encoder/config.json": CLIP_L,
        "scheduler/scheduler_config.json": _scheduler("PNDMScheduler"),
        "tokenizer": "<|endoftext|>",
    },
    "sd21-base": {
        "model_index.json": _sd_index("PNDMScheduler"),
        "unet/config.json": _sd_unet(1024, [5, 10, 20, 20], linear=True, sample_size=64, upcast=False),
        "vae/config.json": _vae(512),
        "text_encoder/config.json": OPEN_CLIP_H,
        "scheduler/scheduler_config.json": _scheduler("PNDMScheduler", prediction_type="epsilon"),
        "tokenizer": "!",
    },
    "sd21-v": {
        "model_index.json": _sd_index("DDIMScheduler"),
        # The 768-v model overflows fp16 in attention without the upcast.
        "unet/config.json": _sd_unet(1024, [5, 10, 20, 20], linear=True, sample_size=96, upcast=True),
        "vae/config.json": _vae(768),
        "text_encoder/config.json": OPEN_CLIP_H,
        "scheduler/scheduler_config.json": _scheduler("DDIMScheduler", prediction_type="v_prediction"),
        "tokenizer": "!",
    },
    "sdxl-base": {
        "model_index.json": SDXL_INDEX,
        "unet/config.json": SDXL_UNET,
        # SDXL's VAE overflows in fp16; force_upcast makes the pipeline decode in fp32.
        "vae/config.json": _vae(1024, scaling_factor=0.13025, force_upcast=True),
        "text_encoder/config.json": CLIP_L,
        "text_encoder_2/config.json": OPEN_CLIP_BIGG,
        "scheduler/scheduler_config.json": _scheduler("EulerDiscreteScheduler", **EULER_EXTRA),
        "tokenizer": "<|endoftext|>",
        "tokenizer_2": "!",
    },
}


def _write_tokenizer(folder: Path, pad_token: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER_DIR / name, folder / name)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = json.loads((TOKENIZER_DIR / name).read_text())
        data["pad_token"] = pad_token
        (folder / name).write_text(json.dumps(data, indent=2) + "\n")


def write_all(out_root: Path = MODEL_CONFIGS_DIR) -> list[Path]:
    written = []
    for folder, files in CONFIGS.items():
        root = out_root / folder
        if root.exists():
            shutil.rmtree(root)
        for rel, content in files.items():
            if rel.startswith("tokenizer"):
                _write_tokenizer(root / rel, str(content))
                written.append(root / rel)
                continue
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
            written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p.relative_to(REPO))
