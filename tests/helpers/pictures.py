"""Input pictures for the image-to-image tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def circle_and_mask(folder: Path) -> tuple[Path, Path]:
    """A red circle on blue (64 px) and a mask (white = repaint) over the circle's middle."""
    img = Image.new("RGB", (64, 64), (35, 75, 220))
    ImageDraw.Draw(img).ellipse((16, 16, 48, 48), fill=(220, 30, 35))
    img.save(folder / "in.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 20, 44, 44), fill=255)
    mask.save(folder / "mask.png")
    return folder / "in.png", folder / "mask.png"
