"""Cheap per-step previews: latents → RGB with a fixed linear map, no VAE.

Each of the 4 latent channels contributes a fixed amount to R, G and B. The factors below are the
widely published least-squares fits of the SD 1.x/2.x VAE and the SDXL VAE (used for the same purpose
by several SD front ends); the picture is blurry and 8× smaller than the image, which is what a live
preview needs at a fraction of a millisecond per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.atomic import atomic_path

# rows: latent channel 0..3; columns: R, G, B
_SD_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SDXL_FACTORS = (
    (0.3920, 0.4054, 0.4549),
    (-0.2634, -0.0196, 0.0653),
    (0.0568, 0.1687, -0.0755),
    (-0.3112, -0.2359, -0.2076),
)

_MIN_SIDE = 128  # nearest-neighbour upscale tiny latents so a preview is visible at all


def latents_to_rgb(latents: Any, *, sdxl: bool = False):
    """The first latent of a (B, 4, h, w) tensor as an (h, w, 3) uint8 numpy array."""
    import torch

    lat = latents[0].detach().float().cpu()
    factors = torch.tensor(_SDXL_FACTORS if sdxl else _SD_FACTORS, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", lat[:4], factors)
    rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    return rgb.numpy()


def write_preview(latents: Any, target: str | Path, *, sdxl: bool = False) -> Path:
    """Write the preview PNG atomically (the GUI may read it while the next step runs)."""
    from PIL import Image

    image = Image.fromarray(latents_to_rgb(latents, sdxl=sdxl), "RGB")
    if min(image.size) < _MIN_SIDE:
        factor = -(-_MIN_SIDE // min(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    target = Path(target)
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", compress_level=1)
    return target
