"""Export a diffusers SD1 / SD2 / SDXL model as one original-layout (A1111 / ComfyUI) .safetensors file.

The file holds the UNet (``model.diffusion_model.*``), the VAE (``first_stage_model.*``) and the text
encoder(s) (SD1 ``cond_stage_model.transformer.text_model.*``, SD2 ``cond_stage_model.model.*`` in
OpenCLIP layout, SDXL ``conditioner.embedders.0.transformer.*`` + ``conditioner.embedders.1.model.*``),
plus ModelSpec metadata naming the architecture and prediction type, so detection needs no guessing.

Known gap: an SD2 diffusers text encoder holds 23 of OpenCLIP ViT-H's 24 layers and no text projection
(SD2 reads the penultimate layer), so an exported SD2 file lacks ``resblocks.23`` and
``text_projection``; every tool we know loads such a file, but it is not byte-identical to Stability's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.engine.atomic import atomic_path
from app.engine.errors import ModelLoadError, UserError
from app.engine.events import EventCallback, Log, ignore_event
from app.engine.models.families import FAMILIES
from app.engine.models.ldm_keys import clip_to_ldm, openclip_to_ldm, unet_to_ldm, vae_to_ldm


def to_ldm_state_dict(pipe: Any, family: str, dtype: Any = None) -> dict[str, Any]:
    """The pipeline's weights under original single-file key names (tensors are not copied unless cast)."""
    state: dict[str, Any] = {}
    state.update(unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block))
    state.update(vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    if family == "sdxl":
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer."))
        state.update(openclip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model."))
    elif family in ("sd2", "sd2-v"):
        state.update(openclip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.model."))
    else:
        state.update(clip_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer."))
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        out[key] = tensor.contiguous()
    return out


def export_metadata(family: str, title: str) -> dict[str, str]:
    info = FAMILIES[family]
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": FAMILIES[family].modelspec_base,
        # The key layout is the original Stability one (what A1111 / ComfyUI read), not diffusers'.
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": title,
        "modelspec.prediction_type": "v" if info.prediction_type == "v_prediction" else "epsilon",
        "modelspec.resolution": f"{info.native_resolution}x{info.native_resolution}",
        "styleshelf.family": family,
    }


def export_single_file(
    folder_or_pipe: str | os.PathLike[str] | Any,
    out_path: str | os.PathLike[str],
    *,
    family: str | None = None,
    dtype: Any = None,
    on_event: EventCallback = ignore_event,
) -> Path:
    """Write ``folder_or_pipe`` (a diffusers folder or a loaded SD/SDXL pipeline) as one .safetensors file.

    ``dtype`` (e.g. ``torch.float16``) casts floating-point tensors; default keeps the loaded precision.
    The write is atomic: ``out_path`` is the old file or the complete new one.
    """
    from safetensors.torch import save_file

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".safetensors":
        raise ModelLoadError(f"{out_path.name}: the single-file export must end in .safetensors.")
    if isinstance(folder_or_pipe, (str, os.PathLike)):
        from app.engine.models.loading import load_base

        if Path(folder_or_pipe).is_file():
            raise ModelLoadError(f"{Path(folder_or_pipe).name} is already a single file; give a diffusers folder.")
        base = load_base(folder_or_pipe, family=family, device="cpu", dtype=dtype)
        pipe, family, title = base.pipe, base.family, base.name
    else:
        pipe, title = folder_or_pipe, out_path.stem
        if family is None:
            family = _family_of_pipe(pipe)
    on_event(Log(message=f"converting {title} ({FAMILIES[family].label}) to the single-file layout"))
    tensors = to_ldm_state_dict(pipe, family, dtype)
    try:
        with atomic_path(out_path) as tmp:
            save_file(tensors, str(tmp), metadata=export_metadata(family, title))
    except OSError as err:
        raise UserError(f"Could not write {out_path}: {err.strerror or err}.") from err
    on_event(Log(message=f"wrote {out_path} ({len(tensors)} tensors)"))
    return out_path


def _family_of_pipe(pipe: Any) -> str:
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    config = pipe.unet.config
    sd2 = config.cross_attention_dim == 1024 or (config.cross_attention_dim != 768 and config.use_linear_projection)
    if not sd2:
        return "sd1"
    return "sd2-v" if pipe.scheduler.config.get("prediction_type") == "v_prediction" else "sd2"
