"""What one generation run asks for (the Generate tab's form) and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.configbase import setting
from app.engine.generate.samplers import SAMPLER_NAMES
from app.engine.shelf.stack import StackEntry

# AUTOMATIC1111's names, so its PNG parameters and its users' habits carry over.
RESIZE_MODES = ("Crop and resize", "Just resize", "Resize and fill")
INPAINT_AREAS = ("Whole picture", "Only masked")
MASKED_CONTENT = ("original", "fill", "latent noise", "latent nothing")


@dataclass
class GenerateConfig:
    prompt: str = setting("", "What to draw. Adapter trigger phrases can be added automatically (see below).")
    negative: str = setting("", "What to avoid (negative prompt).")
    seed: int | None = setting(
        None, "Random seed; empty = pick one at random (the seed used is shown and saved).", minimum=0, maximum=2**32 - 1
    )
    steps: int = setting(20, "Sampling steps.", minimum=1, maximum=200)
    guidance: float = setting(7.0, "CFG scale: how strongly the prompt steers the image.", minimum=0.0, maximum=30.0)
    width: int | None = setting(
        None, "Image width in pixels (multiple of 8); empty = the base model's native size.", minimum=64, maximum=4096
    )
    height: int | None = setting(
        None, "Image height in pixels (multiple of 8); empty = the base model's native size.", minimum=64, maximum=4096
    )
    sampler: str = setting("DPM++ 2M", "Sampler (scheduler).", choices=SAMPLER_NAMES)
    batch_count: int = setting(1, "Images to make one after another (seed, seed+1, …).", minimum=1, maximum=100)
    insert_triggers: bool = setting(
        True, "Put each active adapter's trigger phrase in front of the prompt when it is not there yet."
    )
    out_dir: str = setting("", "Folder for the images; empty = the gallery in the user data folder.", advanced=True)
    file_stem: str = setting(
        "", "File name for the image (without .png); empty = numbered automatically.", advanced=True
    )
    preview_every: int = setting(
        1, "Write a cheap preview every N steps (0 = no previews).", minimum=0, maximum=1000, advanced=True
    )
    # Image-to-image and inpainting (AUTOMATIC1111's names and defaults; see app/engine/generate/img2img.py).
    init_image: str = setting(
        "", "Image to image: the picture to restyle (a file); empty = text to image.", label="Input image"
    )
    strength: float = setting(
        0.75,
        "Denoising strength: how much of the input is redrawn. 0 keeps it, 0.3–0.5 restyles it, 1 ignores it.",
        minimum=0.0, maximum=1.0, label="Denoising strength",
    )  # fmt: skip
    resize_mode: str = setting(
        "Crop and resize",
        "How the input fits the output size: cover and crop the middle, stretch, or fit and fill the edges.",
        choices=RESIZE_MODES,
    )
    mask_image: str = setting(
        "", "Inpainting: a mask picture of the input's shape, white = repaint, black = keep; empty = no mask.",
        label="Mask",
    )  # fmt: skip
    mask_blur: int = setting(4, "Soften the mask's edge by this many pixels.", minimum=0, maximum=64)
    inpaint_area: str = setting(
        "Whole picture",
        "Only masked: repaint just the masked area (plus padding) at the model's full resolution, then paste it in.",
        choices=INPAINT_AREAS,
    )
    inpaint_padding: int = setting(
        32, "Only masked: pixels of context around the mask.", minimum=0, maximum=1024, label="Only masked padding"
    )
    masked_content: str = setting(
        "original",
        "What the masked area starts from: the original picture, its surroundings' colours (fill), "
        "random latents (latent noise) or empty latents (latent nothing).",
        choices=MASKED_CONTENT,
    )
    stack: list[StackEntry] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """txt2img, img2img or inpaint."""
        return "inpaint" if self.init_image and self.mask_image else "img2img" if self.init_image else "txt2img"

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "stack"}
        data["stack"] = [e.to_dict() for e in self.stack]
        return data


@dataclass
class GeneratedImage:
    path: Path
    seed: int
    parameters: str  # the A1111-compatible text written into the PNG
