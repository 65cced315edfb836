"""The pixel side of image to image (no model): A1111's resize modes, the only-masked crop, fill, overlay."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from app.engine.generate import masks

RED, BLUE, GREEN = (220, 30, 35), (35, 75, 220), (35, 160, 60)


def halves(width=128, height=64) -> Image.Image:
    """Left half red, right half blue, green top rows (to see what is stretched)."""
    img = Image.new("RGB", (width, height), RED)
    ImageDraw.Draw(img).rectangle((width // 2, 0, width, height), fill=BLUE)
    ImageDraw.Draw(img).rectangle((0, 0, width, 5), fill=GREEN)
    return img


def at(img, x, y):
    return tuple(int(v) for v in np.asarray(img)[y, x])


def test_crop_and_resize_covers_and_keeps_the_middle():
    out = masks.resize_to(halves(), 64, 64, "Crop and resize")
    assert out.size == (64, 64)
    assert at(out, 5, 32) == RED and at(out, 58, 32) == BLUE  # the 64 px middle of a 128 px picture


def test_just_resize_stretches_everything_in():
    out = masks.resize_to(halves(), 64, 64, "Just resize")
    assert at(out, 10, 32) == RED and at(out, 54, 32) == BLUE and out.size == (64, 64)
    assert np.abs(np.asarray(out, dtype=int)[8:, :30] - RED).max() <= 2, "no crop: the left half is the red half"


def test_resize_and_fill_fits_and_stretches_the_edges_over_the_bands():
    out = masks.resize_to(halves(), 64, 64, "Resize and fill")
    arr = np.asarray(out, dtype=int)
    assert at(out, 10, 32) == RED and at(out, 54, 32) == BLUE  # the whole picture, 64×32, in the middle
    top_band = arr[:15]
    assert np.abs(top_band - np.array(GREEN)).max() <= 40, "the top band repeats the picture's green first row"
    assert np.abs(arr[50:, :20] - np.array(RED)).max() <= 2, "the bottom band repeats the last row"


def test_crop_region_pads_grows_to_the_output_shape_and_stays_inside():
    mask = Image.new("L", (200, 100), 0)
    ImageDraw.Draw(mask).rectangle((10, 40, 29, 49), fill=255)  # 20×10 near the left edge
    x1, y1, x2, y2 = masks.crop_region(mask, 4, 64, 64)
    assert (x2 - x1) == (y2 - y1), "square, like the 64×64 output"
    assert x1 >= 0 and y1 >= 0 and x2 <= 200 and y2 <= 100
    assert x1 <= 6 and x2 >= 34 and y1 <= 36 and y2 >= 54, "the mask plus its padding is inside"
    assert masks.crop_region(Image.new("L", (10, 10), 0), 4, 8, 8) is None


def test_fill_replaces_the_hole_with_surrounding_colour():
    img = Image.new("RGB", (64, 64), BLUE)
    ImageDraw.Draw(img).ellipse((16, 16, 48, 48), fill=RED)
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).ellipse((12, 12, 52, 52), fill=255)
    filled = np.asarray(masks.fill_masked(img, mask), dtype=int)
    assert np.abs(filled[32, 32] - np.array(BLUE)).max() < 30, "the red circle is gone, blue fills in"
    assert np.array_equal(filled[:8], np.asarray(img, dtype=int)[:8])


def test_overlay_keeps_the_original_where_the_mask_is_black():
    new, old = Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)
    mask = Image.new("L", (16, 16), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 7, 15), fill=255)
    out = masks.overlay(new, old, mask)
    assert at(out, 2, 2) == RED and at(out, 12, 2) == BLUE
    doubled = np.asarray(masks.overlay_mask(Image.new("L", (4, 4), 100)))
    assert (doubled == 200).all()
