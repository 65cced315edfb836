"""The Stable Diffusion families StyleShelf knows, and the names other tools use for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["sd1", "sd2", "sd2-v", "sdxl", "demo"]


@dataclass(frozen=True)
class FamilyInfo:
    family: Family
    label: str
    ss_base_model_version: str  # kohya's name, read by AUTOMATIC1111
    modelspec_architecture: str  # Stability's ModelSpec name for a LoRA on this family
    prediction_type: str  # epsilon | v_prediction
    native_resolution: int
    config_folder: str  # assets/model-configs/<folder>, for offline single-file loading
    cross_attention_dim: int  # of the full-size model: 768 / 1024 / 2048 (32 for the demo model)

    @property
    def modelspec_base(self) -> str:
        """ModelSpec's name of the base model itself ("stable-diffusion-v1"), what a checkpoint records."""
        return self.modelspec_architecture.split("/")[0]


FAMILIES: dict[str, FamilyInfo] = {
    "sd1": FamilyInfo("sd1", "SD 1.x", "sd_v1", "stable-diffusion-v1/lora", "epsilon", 512, "sd15", 768),
    "sd2": FamilyInfo("sd2", "SD 2.x", "sd_v2", "stable-diffusion-v2-512/lora", "epsilon", 512, "sd21-base", 1024),
    "sd2-v": FamilyInfo(
        "sd2-v", "SD 2.x 768-v", "sd_v2_v", "stable-diffusion-v2-768-v/lora", "v_prediction", 768, "sd21-v", 1024
    ),
    "sdxl": FamilyInfo(
        "sdxl", "SDXL", "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "epsilon", 1024, "sdxl-base", 2048
    ),
    # The bundled 64 px demo model has SD1's architecture at a fraction of its widths, so nothing trained on it
    # fits a real SD 1.x model. Its own names keep other tools (A1111 lists "sd_v1" files as SD1, ComfyUI
    # patches them with no effect) from taking its adapters for SD1 ones.
    "demo": FamilyInfo(
        "demo", "StyleShelf demo", "styleshelf-demo", "styleshelf-demo-v1/lora", "epsilon", 64, "sd15", 32
    ),
}

# An adapter whose metadata names no family is told by its layer widths. Cross-attention input width (attn2
# to_k/to_v): the families' own widths, first family wins (sd2 over sd2-v: the width cannot tell them apart);
# 1280 is SDXL too (files made for its refiner-width blocks). Text-encoder width (q_proj input): CLIP ViT-L
# 768, OpenCLIP ViT-H 1024, and 1280 (OpenCLIP bigG, SDXL's second encoder).
CROSS_ATTENTION_FAMILY: dict[int, str] = {
    **{info.cross_attention_dim: fam for fam, info in reversed(FAMILIES.items()) if fam != "demo"},
    1280: "sdxl",
}
TEXT_ENCODER_FAMILY: dict[int, str] = {768: "sd1", 1024: "sd2", 1280: "sdxl"}


def family_of_architecture(architecture: str) -> str | None:
    """The family a ModelSpec ``modelspec.architecture`` names ("stable-diffusion-v1/lora" → "sd1"), or None."""
    base = architecture.split("/")[0]
    return next((fam for fam, info in FAMILIES.items() if info.modelspec_base == base), None)


# What marks the demo model (scripts/train_demo_model.py): SD1 layout, cross-attention width 32, UNet channels
# 32/64/128. The tiny test models share the width 32 but not the 128-channel third block.
DEMO_CROSS_ATTENTION = 32
DEMO_BLOCK_CHANNELS = (32, 64, 128)
DEMO_REASON = "the StyleShelf demo model's shapes (cross-attention width 32, UNet channels 32/64/128)"


def is_demo_unet(config: dict) -> bool:
    """Whether a UNet config (diffusers' config.json keys) is the demo model's."""
    return (
        config.get("cross_attention_dim") == DEMO_CROSS_ATTENTION
        and tuple(config.get("block_out_channels") or ()) == DEMO_BLOCK_CHANNELS
        and not config.get("use_linear_projection")
    )


def families_compatible(adapter: str, base: str) -> bool:
    """Whether an adapter labelled ``adapter`` can fit a base of family ``base`` ("" / unknown: cannot tell, so yes)."""
    if adapter in ("", "unknown") or base in ("", "unknown"):
        return True
    group = {"sd2-v": "sd2"}
    return group.get(adapter, adapter) == group.get(base, base)


def family_label(family: str) -> str:
    return FAMILIES[family].label if family in FAMILIES else (family or "unknown")


def family_info(family: str) -> FamilyInfo:
    return FAMILIES[family]
