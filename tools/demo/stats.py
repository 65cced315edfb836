"""Pixel statistics for judging demo pictures without a learned judge.

``scene_colours`` names an image's background colour (from its border pixels) and its shape colour (from the
pixels that differ clearly from that background). The style statistics measure what each example style
changes: diagonal-stripe energy, pastel saturation/lightness, and the share of dark outline pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tools.demo.scenes import COLOURS, STRIPE_PERIOD

_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], dtype=np.float32)


def _rgb(img: Image.Image | np.ndarray) -> np.ndarray:
    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img, dtype=np.float32)
    return arr[..., :3]


def nearest_colour(rgb: np.ndarray) -> str:
    """The named demo colour closest (RGB distance) to one colour."""
    d = ((_PALETTE - np.asarray(rgb, dtype=np.float32)[None, :]) ** 2).sum(axis=1)
    return _NAMES[int(d.argmin())]


@dataclass(frozen=True)
class SceneColours:
    background: str
    shape: str | None  # None when no clear foreground was drawn
    foreground_share: float  # share of pixels counted as the shape


def scene_colours(img: Image.Image | np.ndarray, *, border: int = 3, min_share: float = 0.02) -> SceneColours:
    arr = _rgb(img)
    h, w, _ = arr.shape
    ring = np.concatenate(
        [
            arr[:border].reshape(-1, 3),
            arr[-border:].reshape(-1, 3),
            arr[:, :border].reshape(-1, 3),
            arr[:, -border:].reshape(-1, 3),
        ]
    )
    bg = np.median(ring, axis=0)
    inner = arr[border:-border, border:-border].reshape(-1, 3)
    # "Clearly different from the background": further than half the smallest gap between named colours.
    far = np.sqrt(((inner - bg) ** 2).sum(axis=1)) > 70.0
    share = float(far.mean())
    shape = nearest_colour(np.median(inner[far], axis=0)) if share >= min_share else None
    return SceneColours(nearest_colour(bg), shape, share)


# The chromatic demo colours by hue alone: mixing toward white (light stripes, pastel) keeps a pixel's hue,
# so these name a striped picture's colours where RGB distance would call every light stripe "white".
_CHROMATIC = tuple(n for n in _NAMES if n not in ("white", "black"))


def _hue_vectors(arr: np.ndarray) -> np.ndarray:
    """Per pixel, the hue as a 2-D vector whose length is the saturation (greys count for nothing)."""
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    # Opponent-colour axes (the hexagonal hue plane), normalised by value, so light and dark tints agree.
    x = (2 * r - g - b) / 2
    y = (np.sqrt(3) / 2) * (g - b)
    return np.stack([x, y], axis=-1) / np.maximum(arr.max(axis=-1, keepdims=True), 1.0)


def _angle(vec: np.ndarray) -> np.ndarray:
    return np.arctan2(vec[..., 1], vec[..., 0])


def _angle_gap(a: np.ndarray, b: float) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


_CHROMATIC_ANGLES = np.array([_angle(_hue_vectors(np.array(COLOURS[n], dtype=np.float32))) for n in _CHROMATIC])


def _hue_indices(vec: np.ndarray) -> np.ndarray:
    """Per hue vector, the index in ``_CHROMATIC`` of the nearest named hue."""
    return _angle_gap(_angle(vec)[..., None], _CHROMATIC_ANGLES).argmin(axis=-1)


def hue_layout(img: Image.Image | np.ndarray, *, border: int = 6, min_share: float = 0.008) -> tuple[str, str | None]:
    """(background colour, shape colour) named by hue, for scenes whose colours are both chromatic.

    Unlike ``scene_colours`` this survives styles that lighten or darken some pixels (stripes, pastel, ink): it
    reads hue, which mixing toward white keeps, and takes the most common hue among the clearly coloured pixels
    (saturation at least half the picture's high end), so pale stripes and dark ink do not vote. The background
    is what the border band says; the shape is the most common other hue inside; None when too few pixels have it.
    """
    arr = _rgb(img)
    vec = _hue_vectors(arr)
    norm = np.linalg.norm(vec, axis=-1)
    coloured = (arr.max(axis=-1) > 80) & (norm > 0.5 * np.percentile(norm, 95))
    names = _hue_indices(vec)
    band = np.ones(norm.shape, dtype=bool)
    band[border:-border, border:-border] = False
    votes = names[band & coloured] if (band & coloured).sum() >= 20 else names[band]
    bg = int(np.bincount(votes, minlength=len(_CHROMATIC)).argmax())
    gap = _angle_gap(_angle(vec), float(_CHROMATIC_ANGLES[bg]))
    other = ~band & coloured & (names != bg) & (gap > np.radians(20))
    if other.sum() < min_share * (~band).sum():
        return _CHROMATIC[bg], None
    return _CHROMATIC[bg], _CHROMATIC[int(np.bincount(names[other], minlength=len(_CHROMATIC)).argmax())]


def _luma(arr: np.ndarray) -> np.ndarray:
    return arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def stripe_energy(img: Image.Image | np.ndarray, period: float = STRIPE_PERIOD) -> float:
    """Share of the luma's non-DC spectral energy at the 45° stripe frequency (±1 bin), in [0, 1]."""
    y = _luma(_rgb(img))
    y = y - y.mean()
    n = y.shape[0]
    power = np.abs(np.fft.fft2(y)) ** 2
    total = power.sum() - power[0, 0]
    if total <= 0:
        return 0.0
    k = int(round(n / period))
    hit = 0.0
    for sy, sx in ((k, k), (-k, -k)):  # stripes along x + y = const; both halves of the spectrum
        for oy in (-1, 0, 1):
            for ox in (-1, 0, 1):
                hit += power[(sy + oy) % n, (sx + ox) % n]
    return float(hit / total)


def saturation_lightness(img: Image.Image | np.ndarray) -> tuple[float, float]:
    """Mean HSV saturation and mean HSL lightness, both in [0, 1]; pastel pictures are low/high."""
    arr = _rgb(img) / 255.0
    mx, mn = arr.max(axis=-1), arr.min(axis=-1)
    sat = np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return float(sat.mean()), float(((mx + mn) / 2).mean())


def dark_share(img: Image.Image | np.ndarray, threshold: float = 70.0) -> float:
    """Share of pixels darker than ``threshold`` luma: the ink of thick dark outlines (use on non-black scenes)."""
    return float((_luma(_rgb(img)) < threshold).mean())


def style_score(style: str, img: Image.Image | np.ndarray) -> float:
    """One number per style that grows as a picture looks more like the style set."""
    if style == "stripes":
        return stripe_energy(img)
    if style == "pastel":
        sat, light = saturation_lightness(img)
        return light - sat  # pastel: lighter and less saturated
    if style == "outline":
        return dark_share(img)
    raise ValueError(f"unknown style {style!r}")
