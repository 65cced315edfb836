"""Opening user images safely: every odd file either becomes a correct RGB image or a one-line skip reason.

Kinds handled: zero-byte, truncated or corrupt files, non-images with an image extension, decompression
bombs (pixel cap checked from the header, before decoding), CMYK, 16-bit greyscale, palette images with
transparency, LA/RGBA (flattened on white or on the image's mean colour), EXIF orientation, animated GIF
(first frame).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# EXIF orientations 5–8 rotate by 90°, so width and height swap.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


class SkipImage(Exception):
    """Raised with a short reason when an image cannot or should not be used."""


@dataclass(frozen=True)
class ImageInfo:
    width: int  # after EXIF orientation
    height: int
    mode: str  # as stored in the file (CMYK, I;16, P, RGBA…)
    format: str


def probe_image(path: Path, *, min_side: int, max_pixels: int) -> ImageInfo:
    """Check an image cheaply but for real: header size limits first, then a (reduced, for JPEG) decode.

    A full decode of a large PNG is the only way to catch a truncated one, but JPEGs can decode at 1/8
    scale via ``draft``, which still reads the whole entropy-coded stream (so truncation is caught).
    """
    if path.stat().st_size == 0:
        raise SkipImage("empty file (0 bytes)")
    with _open(path, max_pixels) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise SkipImage(
                f"too large: {width}×{height} px is over the {max_pixels:,}-pixel limit (decompression-bomb guard)"
            )
        orientation = _orientation(img)
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        if min(width, height) < min_side:
            raise SkipImage(f"too small: {width}×{height} px, the shorter side is under {min_side} px")
        mode, fmt = img.mode, img.format or "?"
        if fmt == "JPEG":
            img.draft("RGB", (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
        _decode(img, path)
    return ImageInfo(width, height, mode, fmt)


def load_rgb(path: Path, *, max_pixels: int, background: str = "white") -> Image.Image:
    """Decode ``path`` to an 8-bit RGB image, oriented, first frame only, transparency flattened."""
    with _open(path, max_pixels) as img:
        if img.size[0] * img.size[1] > max_pixels:
            raise SkipImage(f"too large: {img.size[0]}×{img.size[1]} px (decompression-bomb guard)")
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        _decode(img, path)
        img = ImageOps.exif_transpose(img)
        return to_rgb(img, background=background)


def to_rgb(img: Image.Image, *, background: str = "white") -> Image.Image:
    """Convert any Pillow mode to RGB the way a viewer would show it."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert("L") clips 16-bit values at 255 (a near-white image); scale the range instead.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        return _flatten(img, background)
    return img.convert("RGB")  # CMYK, YCbCr, L, 1, P (opaque), RGB


def _flatten(img: Image.Image, background: str) -> Image.Image:
    if background == "mean":
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        alpha = arr[..., 3:4] / 255.0
        weight = alpha.sum()
        colour = tuple(int(v) for v in ((arr[..., :3] * alpha).sum((0, 1)) / weight)) if weight > 0 else (255,) * 3
    else:
        colour = (255, 255, 255)
    canvas = Image.new("RGB", img.size, colour)
    canvas.paste(img, mask=img.getchannel("A"))
    return canvas


def _open(path: Path, max_pixels: int) -> Image.Image:
    # Our own cap (from the header, before any decode) is the guard; Pillow's global one only warns below
    # twice its limit, and that warning would be noise next to our clearer skip reason.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SkipImage(f"too large (decompression-bomb guard): {err}") from None
    except UnidentifiedImageError:
        raise SkipImage("not an image (the content is not a format Pillow can read)") from None
    except OSError as err:
        raise SkipImage(f"unreadable: {err}") from None


def _decode(img: Image.Image, path: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SkipImage(f"too large (decompression-bomb guard): {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise SkipImage(f"corrupt or truncated image: {err}") from None


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not cost the image; it is shown unrotated
        return 1
