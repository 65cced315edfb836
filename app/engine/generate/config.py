"""What one generation run asks for (the Generate tab's form) and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.configbase import setting
from app.engine.generate.samplers import SAMPLER_NAMES
from app.engine.shelf.stack import StackEntry


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
    stack: list[StackEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "stack"}
        data["stack"] = [e.to_dict() for e in self.stack]
        return data


@dataclass
class GeneratedImage:
    path: Path
    seed: int
    parameters: str  # the A1111-compatible text written into the PNG
