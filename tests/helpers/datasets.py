"""Training image folders made on the fly (no image files checked in)."""

from __future__ import annotations

from pathlib import Path


def make_style_set(folder: Path, count: int, *, size: int = 64, seed: int = 0, prefix: str = "stripes") -> Path:
    """Diagonal two-colour stripes at random period and phase: a consistent 'style' a LoRA can learn."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(count):
        period, phase = rng.uniform(6, 12), rng.uniform(0, 2 * np.pi)
        on = np.sin((x + y) / period * 2 * np.pi + phase) > 0
        img = np.where(on[..., None], np.array([220, 60, 40]), np.array([30, 40, 120])).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{prefix}_{i:02d}.png")
    return folder
