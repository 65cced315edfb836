"""Pixel-side preparation of image-to-image and inpainting inputs, as AUTOMATIC1111 does it (pure PIL/numpy).

- ``resize_to``: A1111's three resize modes ("Just resize" stretches, "Crop and resize" covers and crops
  the middle, "Resize and fill" fits and fills the rest with the picture's stretched edges).
- ``blur_mask``: a Gaussian blur of the mask (white = repaint), so the repainted area blends in.
- ``crop_region``: "Inpaint area: Only masked": the mask's bounding box plus padding, grown to the output's
  aspect ratio, so a small area is repainted at the model's full resolution and pasted back.
- ``fill_masked``: "Masked content: fill": the hole is filled with the colours around it before encoding.
- ``overlay``: the original pixels are put back outside the (blurred) mask after decoding, so what the
  mask keeps is exactly the input, not the autoencoder's round trip of it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from app.engine.generate.config import RESIZE_MODES


def resize_to(img: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """``img`` at exactly ``width``×``height`` by one of ``RESIZE_MODES``."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}")
    if img.size == (width, height):
        return img.copy()
    if mode == "Just resize":
        return img.resize((width, height), Image.LANCZOS)
    ratio, src_ratio = width / height, img.width / img.height
    cover = mode == "Crop and resize"
    # Scale so the picture covers (crop) or fits inside (fill) the target.
    by_width = (ratio > src_ratio) if cover else (ratio < src_ratio)
    rw = width if by_width else max(1, round(img.width * height / img.height))
    rh = max(1, round(img.height * width / img.width)) if by_width else height
    resized = img.resize((rw, rh), Image.LANCZOS)
    canvas = Image.new(img.mode, (width, height))
    left, top = (width - rw) // 2, (height - rh) // 2
    canvas.paste(resized, (left, top))
    if not cover:  # stretch the edge rows / columns over the empty bands, as A1111 does
        if top > 0:
            canvas.paste(resized.crop((0, 0, rw, 1)).resize((width, top)), (0, 0))
            bottom = height - top - rh
            if bottom > 0:
                canvas.paste(resized.crop((0, rh - 1, rw, rh)).resize((width, bottom)), (0, top + rh))
        if left > 0:
            canvas.paste(resized.crop((0, 0, 1, rh)).resize((left, height)), (0, 0))
            right = width - left - rw
            if right > 0:
                canvas.paste(resized.crop((rw - 1, 0, rw, rh)).resize((right, height)), (left + rw, 0))
    return canvas


def blur_mask(mask: Image.Image, radius: int) -> Image.Image:
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask.copy()


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) around the mask's painted pixels plus ``padding``, grown toward the aspect ratio
    ``width``/``height`` and kept inside the picture; None for an empty mask."""
    arr = np.asarray(mask) > 0
    if not arr.any():
        return None
    ys, xs = np.nonzero(arr)
    W, H = mask.size
    x1, y1 = max(int(xs.min()) - padding, 0), max(int(ys.min()) - padding, 0)
    x2, y2 = min(int(xs.max()) + 1 + padding, W), min(int(ys.max()) + 1 + padding, H)
    # Grow the short side so the crop has the output's shape (no distortion when it is resized to it).
    want = width / height
    cw, ch = x2 - x1, y2 - y1
    if cw / ch < want:
        grow = min(round(ch * want), W) - cw
        x1, x2 = _grow(x1, x2, grow, W)
    elif cw / ch > want:
        grow = min(round(cw / want), H) - ch
        y1, y2 = _grow(y1, y2, grow, H)
    return x1, y1, x2, y2


def _grow(lo: int, hi: int, amount: int, limit: int) -> tuple[int, int]:
    lo -= amount // 2
    hi += amount - amount // 2
    if lo < 0:
        hi, lo = min(hi - lo, limit), 0
    if hi > limit:
        lo, hi = max(lo - (hi - limit), 0), limit
    return lo, hi


def fill_masked(img: Image.Image, mask: Image.Image) -> Image.Image:
    """Replace the masked area with the surrounding colours, blurred in from coarse to fine (A1111's fill)."""
    keep = ImageOps.invert(mask.convert("L"))
    known = Image.new("RGBa", img.size)
    known.paste(img.convert("RGBA").convert("RGBa"), mask=keep)
    out = Image.new("RGBA", img.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = known.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def overlay_mask(blurred: Image.Image) -> Image.Image:
    """The mask that decides how much of the new picture shows: the blurred mask doubled (A1111), so the
    middle of a soft edge is already fully repainted and only its outer half blends into the original."""
    arr = np.clip(np.asarray(blurred, dtype=np.float32) * 2.0, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L")


def overlay(result: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """``result`` where ``mask`` is white, ``original`` where it is black, blended in between."""
    return Image.composite(result.convert("RGB"), original.convert("RGB"), mask.convert("L"))


def paste_back(
    patch: Image.Image, original: Image.Image, region: tuple[int, int, int, int], mask: Image.Image
) -> Image.Image:
    """ "Only masked": the repainted crop, resized back to its region, over the full-size original."""
    x1, y1, x2, y2 = region
    canvas = original.convert("RGB").copy()
    canvas.paste(patch.convert("RGB").resize((x2 - x1, y2 - y1), Image.LANCZOS), (x1, y1))
    return overlay(canvas, original, mask)
