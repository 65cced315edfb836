"""Full-size, zero-filled single-file checkpoints for tests and benchmarks, sparse on disk.

No real weights can be downloaded here, yet loading code must be proven on real SD shapes. This writes a
.safetensors file with the exact key names and shapes of a released checkpoint (from the config skeletons
in assets/model-configs), whose data block is a hole in the file: gigabytes long, almost no disk used,
every weight 0.0 when read.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from app.engine.models.families import FAMILIES
from app.engine.models.ldm_keys import clip_to_ldm, openclip_to_ldm, unet_to_ldm, vae_to_ldm
from app.engine.paths import MODEL_CONFIGS_DIR

_BYTES = {"F16": 2, "BF16": 2, "F32": 4}


def release_shapes(family: str, *, in_channels: int = 4) -> dict[str, tuple[int, ...]]:
    """Key → shape of a released single-file checkpoint of ``family`` (built on the meta device);
    ``in_channels=9``: its inpainting release (sd-v1-5-inpainting and the like), which differs in conv_in only."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = MODEL_CONFIGS_DIR / FAMILIES[family].config_folder
    with init_empty_weights():
        unet_config = UNet2DConditionModel.load_config(root / "unet")
        unet = UNet2DConditionModel.from_config(unet_config, in_channels=in_channels)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        te_config = CLIPTextConfig.from_pretrained(root / "text_encoder")
        if family in ("sd2", "sd2-v"):
            te_config.num_hidden_layers += 1  # the release keeps OpenCLIP's 24th layer, unused by SD2
        te = CLIPTextModel(te_config)
        te2 = None
        if family == "sdxl":
            te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
    tensors = {}
    tensors.update(unet_to_ldm(unet.state_dict(), unet.config.layers_per_block))
    tensors.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    if family == "sdxl":
        tensors.update(clip_to_ldm(te.state_dict(), "conditioner.embedders.0.transformer."))
        tensors.update(openclip_to_ldm(te2.state_dict(), "conditioner.embedders.1.model."))
    elif family in ("sd2", "sd2-v"):
        tensors.update(openclip_to_ldm(te.state_dict(), "cond_stage_model.model."))
        width = te_config.hidden_size
        tensors["cond_stage_model.model.text_projection"] = te.embeddings.token_embedding.weight.new_empty(width, width)
    else:
        tensors.update(clip_to_ldm(te.state_dict(), "cond_stage_model.transformer."))
    return {k: tuple(v.shape) for k, v in tensors.items()}


def write_skeleton_checkpoint(
    family: str,
    out_path: str | os.PathLike[str],
    *,
    dtype: str = "F16",
    metadata: dict[str, str] | None = None,
    in_channels: int = 4,
) -> Path:
    """Write a sparse zero-filled full-size checkpoint of ``family``; returns its path."""
    out_path = Path(out_path)
    header: dict[str, object] = {}
    offset = 0
    for key, shape in sorted(release_shapes(family, in_channels=in_channels).items()):
        size = _BYTES[dtype]
        for dim in shape:
            size *= dim
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data block 8-byte aligned, as safetensors writers do
    with open(out_path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        fh.truncate(8 + len(raw) + offset)  # a hole: reads as zeros, takes no disk space
    return out_path
