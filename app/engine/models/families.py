"""The Stable Diffusion families StyleShelf knows, and the names other tools use for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["sd1", "sd2", "sd2-v", "sdxl"]


@dataclass(frozen=True)
class FamilyInfo:
    family: Family
    label: str
    ss_base_model_version: str  # kohya's name, read by AUTOMATIC1111
    modelspec_architecture: str  # Stability's ModelSpec name for a LoRA on this family
    prediction_type: str  # epsilon | v_prediction
    native_resolution: int
    config_folder: str  # assets/model-configs/<folder>, for offline single-file loading
    cross_attention_dim: int  # of the full-size model: 768 / 1024 / 2048


FAMILIES: dict[str, FamilyInfo] = {
    "sd1": FamilyInfo("sd1", "SD 1.x", "sd_v1", "stable-diffusion-v1/lora", "epsilon", 512, "sd15", 768),
    "sd2": FamilyInfo("sd2", "SD 2.x", "sd_v2", "stable-diffusion-v2-512/lora", "epsilon", 512, "sd21-base", 1024),
    "sd2-v": FamilyInfo(
        "sd2-v", "SD 2.x 768-v", "sd_v2_v", "stable-diffusion-v2-768-v/lora", "v_prediction", 768, "sd21-v", 1024
    ),
    "sdxl": FamilyInfo(
        "sdxl", "SDXL", "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "epsilon", 1024, "sdxl-base", 2048
    ),
}


def family_info(family: str) -> FamilyInfo:
    return FAMILIES[family]
