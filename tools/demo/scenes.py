"""Procedural captioned scenes: one coloured shape on a plain background, optionally in a style.

The demo model is trained on these ("a large red circle on a blue background"), and the three example style
sets are the same scenes drawn with diagonal stripes, a pastel palette or thick dark outlines. Drawing is
4x supersampled and then box-filtered, so edges are anti-aliased like a real picture's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Far apart in RGB, so a pixel's nearest named colour is unambiguous (see stats.nearest_colour).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 220, 40),
    "green": (35, 160, 60),
    "blue": (35, 75, 220),
    "purple": (135, 45, 175),
    "white": (245, 245, 245),
    "black": (20, 20, 24),
}
SHAPES = ("circle", "square", "triangle", "star")
# Shape radius as a share of the image side; "" is the unspecified (medium) size.
SIZES: dict[str, float] = {"small": 0.17, "": 0.26, "large": 0.36}
STYLES = ("stripes", "pastel", "outline")

STRIPE_PERIOD = 16  # pixels at 64 px: 4 latent pixels, well inside what a /4 VAE can carry
_SS = 4  # supersampling factor


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    size: str = ""  # "", "small" or "large"
    dx: float = 0.0  # centre offset, share of the image side
    dy: float = 0.0

    def caption(self) -> str:
        size = f"{self.size} " if self.size else ""
        return f"a {size}{self.colour} {self.shape} on a {self.background} background"


def random_scene(rng: random.Random, *, colours: tuple[str, ...] = tuple(COLOURS), jitter: float = 0.08) -> Scene:
    """A random scene whose shape and background colours differ."""
    colour, background = rng.sample(colours, 2)
    return Scene(
        shape=rng.choice(SHAPES),
        colour=colour,
        background=background,
        size=rng.choice(tuple(SIZES)),
        dx=rng.uniform(-jitter, jitter),
        dy=rng.uniform(-jitter, jitter),
    )


def _polygon(shape: str, cx: float, cy: float, r: float, rotation: float = 0.0) -> list[tuple[float, float]]:
    if shape == "square":
        k = r * 0.85  # same visual area as the circle, roughly
        pts = [(-k, -k), (k, -k), (k, k), (-k, k)]
    elif shape == "triangle":
        pts = [(r * math.cos(a), r * math.sin(a) + 0.12 * r) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        pts = []
        for i in range(10):
            a = -math.pi / 2 + i * math.pi / 5
            rr = r if i % 2 == 0 else r * 0.45
            pts.append((rr * math.cos(a), rr * math.sin(a)))
    else:
        raise ValueError(f"not a polygon shape: {shape}")
    c, s = math.cos(rotation), math.sin(rotation)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _shape_mask(scene: Scene, big: int, rotation: float = 0.0) -> Image.Image:
    """A supersampled L-mode mask of the shape (255 inside)."""
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    r = SIZES[scene.size] * big
    cx, cy = big * (0.5 + scene.dx), big * (0.5 + scene.dy)
    if scene.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(_polygon(scene.shape, cx, cy, r, rotation), fill=255)
    return mask


def _mix(rgb: tuple[int, int, int], toward: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(round(a + (b - a) * amount)) for a, b in zip(rgb, toward))  # type: ignore[return-value]


def render(
    scene: Scene,
    size: int = 64,
    style: str | None = None,
    *,
    stripe_period: float = STRIPE_PERIOD,
    stripe_angle: float = 45.0,
    outline_px: float = 3.5,
    pastel: float = 0.55,
    rotation: float = 0.0,
    fg_rgb: tuple[int, int, int] | None = None,
    bg_rgb: tuple[int, int, int] | None = None,
) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size``×``size``, plain or in one of ``STYLES``.

    The keyword knobs let the VAE's training data vary the styles (angles, periods, odd colours) so the
    autoencoder carries any such picture, not only the exact example sets.
    """
    big = size * _SS
    fg = fg_rgb or COLOURS[scene.colour]
    bg = bg_rgb or COLOURS[scene.background]
    if style == "pastel":
        fg, bg = _mix(fg, (255, 255, 255), pastel), _mix(bg, (255, 255, 255), pastel)
    mask = _shape_mask(scene, big, rotation)
    img = Image.new("RGB", (big, big), bg)
    img.paste(Image.new("RGB", (big, big), fg), (0, 0), mask)
    if style == "outline":
        # A ring of ink straddling the shape's edge: dilated mask minus eroded mask.
        k = max(3, int(round(outline_px * _SS)) | 1)
        ring = np.asarray(mask.filter(ImageFilter.MaxFilter(k)), dtype=np.int16) - np.asarray(
            mask.filter(ImageFilter.MinFilter(k)), dtype=np.int16
        )
        ring_img = Image.fromarray(np.clip(ring, 0, 255).astype(np.uint8))
        img.paste(Image.new("RGB", (big, big), (25, 20, 30)), (0, 0), ring_img)
    elif style == "stripes":
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / _SS
        a = math.radians(stripe_angle)
        phase = (xx * math.cos(a) + yy * math.sin(a)) / stripe_period
        on = (phase - np.floor(phase)) < 0.5
        arr = np.asarray(img, dtype=np.float32)
        arr[on] = arr[on] * 0.4 + 255 * 0.6  # light stripes over shape and background alike
        img = Image.fromarray(arr.astype(np.uint8))
    elif style not in (None, "pastel"):
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    return img.resize((size, size), Image.BOX)


def image_to_tensor_array(img: Image.Image) -> np.ndarray:
    """HWC uint8 image → CHW float32 in [-1, 1], the range the VAE works in."""
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
