"""What one generation run asks for (the Generate tab's form) and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.configbase import Settings, setting
from app.engine.generate.samplers import SAMPLER_NAMES
from app.engine.shelf.stack import StackEntry

# AUTOMATIC1111's names, so its PNG parameters and its users' habits carry over.
RESIZE_MODES = ("Crop and resize", "Just resize", "Resize and fill")
INPAINT_AREAS = ("Whole picture", "Only masked")
MASKED_CONTENT = ("original", "fill", "latent noise", "latent nothing")


@dataclass
class GenerateConfig(Settings):
    # One definition per setting: the Generate tab's widgets take their range, step and tooltip from here, the
    # CLI its flags (``flag=`` renames one, ``cli=False`` leaves it out), so the two cannot drift apart. A
    # setting the tab does not place by hand is built into its "More settings" form (``form=False``: never).
    prompt: str = setting(
        "", "What to draw. The trigger words of the styles you switch on are added for you", metavar="TEXT",
        form=False,
    )  # fmt: skip
    negative: str = setting(
        "", "Things the picture should not show, e.g. “blurry, text”. Leave it empty at first; add words when "
        "something unwanted keeps appearing", metavar="TEXT", form=False,
    )  # fmt: skip
    seed: int | None = setting(
        None, "The starting noise; empty = a random one (the seed used is shown and saved). Same seed + same "
        "settings + same styles = the same picture: keep it to compare styles or strengths fairly",
        minimum=0, maximum=2**32 - 1,
    )  # fmt: skip
    steps: int = setting(
        20, "Denoising steps. More is slower and usually cleaner; 20–30 suits most samplers. Raise it if pictures "
        "look noisy or unfinished, lower it for quick drafts", minimum=1, maximum=200,
    )  # fmt: skip
    guidance: float = setting(
        7.0, "How strictly the picture follows the prompt (CFG scale). 5–8 is usual; raise it if the prompt is "
        "ignored, lower it if colours look burnt or harsh", minimum=0.0, maximum=30.0, step=0.5,
    )  # fmt: skip
    width: int | None = setting(
        None, "Picture width in pixels (a multiple of 8); auto (empty) = the size the base model was trained at "
        "(best results). Change it for portrait or landscape; far from auto, subjects repeat or fall apart",
        minimum=64, maximum=4096, step=64,
    )  # fmt: skip
    height: int | None = setting(
        None, "Picture height in pixels (a multiple of 8); auto (empty) = the size the base model was trained at "
        "(best results). Change it for portrait or landscape; far from auto, subjects repeat or fall apart",
        minimum=64, maximum=4096, step=64,
    )  # fmt: skip
    sampler: str = setting(
        "DPM++ 2M", "The sampling method. DPM++ 2M is a good default; Euler a gives softer, more varied results; "
        "change it to match settings copied from another tool", choices=SAMPLER_NAMES, metavar="NAME",
    )  # fmt: skip
    batch_count: int = setting(
        1, "How many pictures to make, one after another, each with the next seed (seed, seed+1, …). Raise it to "
        "pick the best of several", minimum=1, maximum=100,
    )  # fmt: skip
    insert_triggers: bool = setting(
        True, "Put each enabled style's trigger words in front of the prompt (when not there yet). Turn it off "
        "when you write the trigger words into the prompt yourself", flag="triggers",
    )  # fmt: skip
    out_dir: str = setting(
        "", "Folder for the images; empty = the gallery in the user data folder.", advanced=True, cli=False,
        form=False,
    )  # fmt: skip
    file_stem: str = setting(
        "", "File name for the image (without .png); empty = numbered automatically.", advanced=True, cli=False,
        form=False,
    )  # fmt: skip
    preview_every: int = setting(
        1, "Write a cheap preview every N steps (0 = no previews).", minimum=0, maximum=1000, advanced=True, cli=False
    )
    # Image-to-image and inpainting (AUTOMATIC1111's names and defaults; see app/engine/generate/img2img.py).
    init_image: str = setting(
        "",
        "Image to image: the picture to restyle (a file); empty = text to image.",
        label="Input image",
        metavar="PIC",
        form=False,  # picked, dropped or pasted on the input panel
    )
    strength: float = setting(
        0.75,
        "Denoising strength: how much of the input is redrawn. 0 keeps it, 0.3–0.5 restyles it, 1 ignores it.",
        minimum=0.0, maximum=1.0, label="Denoising strength", step=0.01,
    )  # fmt: skip
    resize_mode: str = setting(
        "Crop and resize",
        "How the input fits the output size: cover and crop the middle, stretch, or fit and fill the edges.",
        choices=RESIZE_MODES,
    )
    mask_image: str = setting(
        "", "Inpainting: a mask picture of the input's shape, white = repaint, black = keep; empty = no mask.",
        label="Mask", flag="mask", metavar="MASK", form=False,
    )  # fmt: skip
    mask_blur: int = setting(4, "Soften the mask's edge by this many pixels.", minimum=0, maximum=64)
    inpaint_area: str = setting(
        "Whole picture",
        "Only masked: repaint just the masked area (plus padding) at the model's full resolution, then paste it in.",
        choices=INPAINT_AREAS,
    )
    inpaint_padding: int = setting(
        32,
        "Only masked: pixels of context around the mask.",
        minimum=0,
        maximum=1024,
        label="Only masked padding",
        step=8,
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
