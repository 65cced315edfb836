"""Sample images during training, written as PNGs, with memory released afterwards."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import torch
from PIL import Image

from app.engine.atomic import atomic_write_bytes


@torch.no_grad()
def render_samples(pipe, prompts: list[str], *, folder: Path, step: int, size: int, steps: int, seed: int,
                   device: torch.device) -> list[Path]:
    """Render one image per prompt with the LoRA as it is now; the UNet is back in train mode afterwards."""
    unet = pipe.unet
    was_training = unet.training
    unet.eval()
    pipe.set_progress_bar_config(disable=True)
    paths = []
    try:
        for i, prompt in enumerate(prompts):
            generator = torch.Generator(device="cpu").manual_seed(seed + i)
            image = pipe(prompt, num_inference_steps=steps, height=size, width=size, generator=generator,
                         output_type="pil").images[0]
            path = folder / f"step-{step:06d}-{i}.png"
            atomic_write_bytes(path, png_bytes(image))
            paths.append(path)
    finally:
        unet.train(was_training)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return paths


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_of(path: Path, size: int = 256) -> Image.Image:
    with Image.open(path) as img:
        thumb = img.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    if thumb.size != (size, size) and max(thumb.size) < size:
        # Samples at a small training resolution are upscaled so every thumbnail is 256 px on its long side.
        scale = size / max(thumb.size)
        thumb = thumb.resize((round(thumb.size[0] * scale), round(thumb.size[1] * scale)), Image.Resampling.LANCZOS)
    return thumb
