"""Cheap family detection (sd1 / sd2 / sd2-v / sdxl) for a diffusers folder or a single-file checkpoint.

Folders: read model_index.json, unet/config.json and the scheduler config (a few kB of JSON).
Single files: read only the safetensors header (names, shapes, metadata); never the tensor data.

SD2 epsilon vs v-prediction cannot be read from tensors (same shapes), so for single files we use, in
order: the file's metadata, its name ("768", "-v", "vpred"), else epsilon; callers may override.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.errors import ModelLoadError
from app.engine.models.families import DEMO_REASON, FAMILIES, Family, is_demo_unet
from app.engine.safetensors_file import Header, read_header, refuse_pickle

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
SDXL_TEXT_PREFIXES = ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.")

SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")
SDXL_PIPELINES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
INPAINT_IN_CHANNELS = 9  # latents + mask + masked-picture latents: an inpainting UNet (used as such)


@dataclass
class Detection:
    family: Family
    single_file: bool
    reason: str  # how the family was decided, for `styleshelf models info`
    prediction_type: str  # epsilon | v_prediction
    pipeline_class: str  # StableDiffusionPipeline | StableDiffusionXLPipeline
    details: dict[str, str] = field(default_factory=dict)


def detect_family(path: str | os.PathLike[str]) -> Family:
    """The family of a diffusers folder or a .safetensors checkpoint, from configs or the header only."""
    return inspect_model(path).family


def inspect_model(path: str | os.PathLike[str]) -> Detection:
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    if path.is_dir():
        return detect_folder(path)
    refuse_pickle(path, error=ModelLoadError)
    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError(
            f"{path.name} is not a model StyleShelf can open: give a diffusers folder or a .safetensors checkpoint."
        )
    return detect_header(read_header(path, error=ModelLoadError, strict=False))


# ---------------------------------------------------------------------------------------------- folders


def native_resolution(path: str | os.PathLike[str]) -> int:
    """The image size a base model was trained at: UNet sample size × VAE downscale from a diffusers folder's
    configs (64 for the demo model), else the family's (512 SD1, 768 SD2-v, 1024 SDXL)."""
    folder = Path(path)
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError):
        return FAMILIES[detect_family(path)].native_resolution  # single files: the family's size


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path.parent.name}/ has no {path.name}: {what} is missing.") from None
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path} cannot be read ({err}).") from err
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object.")
    return data


def detect_folder(folder: Path) -> Detection:
    index_path = folder / "model_index.json"
    if not index_path.exists():
        if (folder / "config.json").exists() or (folder / "diffusion_pytorch_model.safetensors").exists():
            raise ModelLoadError(
                f"{folder.name}/ looks like one component of a diffusers model (no model_index.json).",
                hint="Give the folder above it, the one holding model_index.json.",
            )
        raise ModelLoadError(f"{folder.name}/ is not a diffusers model folder (no model_index.json).")
    index = _read_json(index_path, "the pipeline index")
    cls = str(index.get("_class_name", ""))
    if cls not in SD_PIPELINES + SDXL_PIPELINES:
        raise ModelLoadError(
            f"{folder.name}/ is a {cls or 'unknown'} model; StyleShelf supports Stable Diffusion 1.x, 2.x and "
            "SDXL (StableDiffusionPipeline / StableDiffusionXLPipeline)."
        )
    unet = _read_json(folder / "unet" / "config.json", "the UNet config")
    in_channels = int(unet.get("in_channels", 4))
    if in_channels not in (4, INPAINT_IN_CHANNELS):
        raise ModelLoadError(_wrong_in_channels(folder.name, in_channels))
    detection = _detect_folder_family(folder, index, cls, unet)
    if in_channels == INPAINT_IN_CHANNELS:
        _mark_inpainting(detection)
    return detection


def _mark_inpainting(detection: Detection) -> None:
    """Say so wherever the detection shows (``models info``, the window's badge, the loader)."""
    detection.reason += "; inpainting UNet (9 input channels): used for inpainting and image to image"
    detection.details["inpainting"] = "true"


def is_inpainting(detection: Detection) -> bool:
    return detection.details.get("inpainting") == "true"


def _detect_folder_family(folder: Path, index: dict, cls: str, unet: dict) -> Detection:
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json", "the scheduler config")
    prediction = str(scheduler.get("prediction_type", "epsilon"))
    cross = unet.get("cross_attention_dim")
    if cls in SDXL_PIPELINES:
        if not (index.get("text_encoder") or [None])[0]:
            raise ModelLoadError(f"{folder.name}/ is an SDXL refiner; StyleShelf needs an SDXL base model.")
        return Detection("sdxl", False, f"{cls} in model_index.json", prediction, "StableDiffusionXLPipeline")
    if is_demo_unet(unet):
        family, reason = "demo", DEMO_REASON
    elif cross == 768:
        family, reason = "sd1", "UNet cross-attention width 768 (CLIP ViT-L)"
    elif cross == 1024:
        family, reason = "sd2", "UNet cross-attention width 1024 (OpenCLIP ViT-H)"
    elif unet.get("use_linear_projection"):  # custom widths (tiny models): SD2 uses linear attention projections
        family, reason = "sd2", "linear attention projections in the UNet config (SD2 layout)"
    else:
        family, reason = "sd1", "convolutional attention projections in the UNet config (SD1 layout)"
    if family == "sd2" and prediction == "v_prediction":
        family, reason = "sd2-v", reason + "; scheduler prediction_type v_prediction"
    return Detection(family, False, reason, prediction, "StableDiffusionPipeline")


def _wrong_in_channels(name: str, in_channels: int) -> str:
    kind = {8: "an instruct-pix2pix model", 5: "a depth-to-image model"}.get(
        in_channels, f"a UNet with {in_channels} input channels"
    )
    return f"{name} is {kind}; StyleShelf needs a text-to-image base model (4 input channels)."


# ------------------------------------------------------------------------------------------ single files


def describe_contents(keys: list[str]) -> str:
    """What a .safetensors that is not a full SD checkpoint looks like, in a few words."""
    joined = "\n".join(keys[:2000])
    if any(m in joined for m in ("lora_down", "lora_up", "lora_A", "lora_B", ".lora.down", "lora_unet_", "lora_te")):
        return "a LoRA adapter (add it to the shelf instead)"
    if "emb_params" in keys or "string_to_param" in joined or set(keys) <= {"clip_l", "clip_g"}:
        return "a textual-inversion embedding"
    if any(k.startswith("control_model.") for k in keys) or "controlnet_cond_embedding" in joined:
        return "a ControlNet"
    if "double_blocks." in joined or "joint_blocks." in joined or "single_blocks." in joined:
        return "a Flux or SD3 model, which StyleShelf does not support"
    vae_like = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", VAE_PREFIX, "vae.")
    if keys and all(k.startswith(vae_like) for k in keys):
        return "a VAE alone"
    if "conv_in.weight" in keys and "time_embedding.linear_1.weight" in keys:
        return "a diffusers UNet weights file alone (give the whole diffusers folder instead)"
    if keys and all(("text_model." in k or k.startswith(("text_projection", "logit_scale"))) for k in keys):
        return "a text encoder alone"
    return "not a Stable Diffusion checkpoint (it has no model.diffusion_model.* UNet weights)"


_V_NAME = re.compile(r"768|(?:^|[-_ .])v(?:[-_ .]|$)|v[-_ ]?pred")


def v_prediction_hint(metadata: dict[str, str], name: str) -> tuple[bool | None, str]:
    """Whether an SD2 single file is v-prediction: (True/False, why) or (None, "") when nothing says."""
    for key in ("modelspec.prediction_type", "prediction_type", "styleshelf.prediction_type"):
        value = metadata.get(key, "").strip().lower()
        if value in ("v", "v_prediction", "v-prediction"):
            return True, f"metadata {key}={value}"
        if value in ("epsilon", "eps"):
            return False, f"metadata {key}={value}"
    arch = metadata.get("modelspec.architecture", "").lower()
    if arch.startswith("stable-diffusion-v2"):
        return arch.endswith("-v") or "-v/" in arch, f"metadata modelspec.architecture={arch}"
    if metadata.get("ss_v_parameterization", "").lower() == "true":
        return True, "metadata ss_v_parameterization=True"
    if _V_NAME.search(Path(name).stem.lower()):
        return True, f"file name {name!r} (768 / -v / vpred)"
    return None, ""


def _cross_attention_width(header: Header) -> int | None:
    for key, info in header.tensors.items():
        if key.startswith(UNET_PREFIX) and key.endswith("attn2.to_k.weight") and len(info.shape) == 2:
            return info.shape[1]
    return None


def unet_in_channels(header: Header) -> int:
    """The UNet's input channels from conv_in's shape in the header (4 normal, 9 inpainting); 4 when absent."""
    conv_in = header.shape(UNET_PREFIX + "input_blocks.0.0.weight")
    return int(conv_in[1]) if conv_in is not None and len(conv_in) == 4 else 4


def detect_header(header: Header) -> Detection:
    keys = list(header.tensors)
    name = header.path.name
    if not any(k.startswith(UNET_PREFIX) for k in keys):
        raise ModelLoadError(f"{name} is not a Stable Diffusion checkpoint: it looks like {describe_contents(keys)}.")
    in_channels = unet_in_channels(header)
    if in_channels not in (4, INPAINT_IN_CHANNELS):
        raise ModelLoadError(_wrong_in_channels(name, in_channels))
    detection = _detect_header_family(header, keys, name)
    if in_channels == INPAINT_IN_CHANNELS:  # A1111's sd-v1-5-inpainting.safetensors and the like
        _mark_inpainting(detection)
    return detection


def _detect_header_family(header: Header, keys: list[str], name: str) -> Detection:
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    width = _cross_attention_width(header)
    details = {"tensors": str(len(keys)), "cross_attention_width": str(width)}
    label_emb = any(k.startswith(UNET_PREFIX + "label_emb.") for k in keys)
    if has("conditioner.embedders.0.model.") and not has("conditioner.embedders.1."):
        raise ModelLoadError(f"{name} is an SDXL refiner; StyleShelf needs an SDXL base model.")
    if label_emb and has("cond_stage_model."):
        # SD2 unCLIP models condition on an image embedding through label_emb: not a text-to-image base.
        raise ModelLoadError(
            f"{name} is an SD 2.x unCLIP (image-variation) model; StyleShelf needs a text-to-image base model."
        )
    if has("conditioner.embedders.1.") or label_emb:
        return Detection(
            "sdxl",
            True,
            "SDXL size conditioning (label_emb) / two text encoders",
            "epsilon",
            "StableDiffusionXLPipeline",
            details,
        )
    if has(SD2_TEXT_PREFIX):
        family, reason = "sd2", "OpenCLIP text encoder (cond_stage_model.model.*)"
    elif has(SD1_TEXT_PREFIX):
        family, reason = "sd1", "CLIP text encoder (cond_stage_model.transformer.*)"
    elif width == 768:
        family, reason = "sd1", "UNet cross-attention width 768"
    elif width == 1024:
        family, reason = "sd2", "UNet cross-attention width 1024"
    elif width == 2048:
        family, reason = "sdxl", "UNet cross-attention width 2048"
    else:
        raise ModelLoadError(
            f"{name}: cannot tell which Stable Diffusion family this checkpoint is.",
            hint="Pass the family explicitly (sd1, sd2, sd2-v or sdxl).",
        )
    prediction = FAMILIES[family].prediction_type
    if family == "sd2":
        is_v, why = v_prediction_hint(header.metadata, name)
        if is_v:
            family, prediction = "sd2-v", "v_prediction"
        reason += f"; {why}" if why else "; no v-prediction hint, assuming epsilon"
    cls = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    return Detection(family, True, reason, prediction, cls, details)


def missing_parts(header: Header, family: str) -> list[str]:
    """The components a full checkpoint of ``family`` must hold but this file lacks."""
    keys = header.tensors
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    missing = []
    if not has(VAE_PREFIX):
        missing.append("VAE (first_stage_model.*)")
    if family == "sdxl":
        for prefix in SDXL_TEXT_PREFIXES:
            if not has(prefix):
                missing.append(f"text encoder ({prefix}*)")
    elif not (has(SD1_TEXT_PREFIX) or has(SD2_TEXT_PREFIX)):
        missing.append("text encoder (cond_stage_model.*)")
    return missing
