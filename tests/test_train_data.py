"""Training data without a model: odd image files, captions, tag counts, buckets, settings, CLI input errors.

``make_style_set`` (striped "style" images, shared with the other training tests) is in tests/helpers/datasets.py.
"""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.engine.configbase import describe
from app.engine.errors import DatasetError, UserError
from app.engine.train import TRAIN_PRESETS, TrainConfig, load_toml, scan_dataset
from app.engine.train.buckets import BatchPlan, choose_bucket, plan_crop
from app.engine.train.dataset import clean_filename
from app.engine.train.images import load_rgb
from tests.helpers.datasets import make_style_set

# ----------------------------------------------------------------------------------- odd files


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    d = tmp_path / "odd"
    d.mkdir()
    colourful = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    # --- files that must be skipped
    (d / "empty.png").write_bytes(b"")
    (d / "notes.jpg").write_text("this is not a picture\n")
    full = _jpeg_bytes(colourful, quality=90)
    (d / "truncated.jpg").write_bytes(full[: len(full) // 2])
    png = io.BytesIO()
    colourful.save(png, format="PNG")
    (d / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (d / "garbage.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(range(256)) * 4)
    Image.new("RGB", (40, 40), "red").save(d / "tiny.png")
    # Over our pixel cap (the test passes max_pixels=200_000): rejected from the header, never decoded.
    Image.new("1", (1000, 1000)).save(d / "bomb.png")
    # --- files that must be converted correctly
    Image.new("CMYK", (80, 64), (0, 255, 255, 0)).save(d / "cmyk.jpg", quality=95)  # pure red in CMYK
    grad = (np.tile(np.linspace(0, 65535, 80), (64, 1))).astype(np.uint16)
    Image.fromarray(grad).save(d / "grey16.png")
    pal = Image.new("P", (64, 64), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    pal.paste(0, (0, 0, 32, 64))  # left half index 0 = transparent
    pal.save(d / "palette.png", transparency=0)
    la = Image.new("LA", (64, 64), (0, 0))  # fully transparent black
    la.paste((0, 255), (32, 0, 64, 64))  # right half opaque black
    la.save(d / "greyalpha.png")
    rgba = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 64, 16))
    rgba.save(d / "rgba.png")
    # EXIF orientation 6 (rotate 90° clockwise to view): stored 96 wide × 64 high, viewed 64 × 96.
    oriented = Image.new("RGB", (96, 64), "white")
    oriented.paste((0, 0, 0), (0, 0, 48, 64))  # stored left half black → viewed top half black
    exif = Image.Exif()
    exif[0x0112] = 6
    oriented.save(d / "rotated.jpg", exif=exif.tobytes(), quality=95)
    frames = [Image.new("RGB", (64, 64), c) for c in ((0, 200, 0), (200, 0, 0))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return d


def test_every_bad_file_is_skipped_with_its_reason(odd_folder):
    report = scan_dataset(odd_folder, min_side=48, max_pixels=200_000)
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert set(reasons) == {
        "empty.png",
        "notes.jpg",
        "truncated.jpg",
        "truncated.png",
        "garbage.webp",
        "tiny.png",
        "bomb.png",
    }
    assert "0 bytes" in reasons["empty.png"]
    assert "not an image" in reasons["notes.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "truncated" in reasons["truncated.png"]
    assert "too small" in reasons["tiny.png"] and "40×40" in reasons["tiny.png"]
    assert "decompression-bomb" in reasons["bomb.png"] and "1000×1000" in reasons["bomb.png"]
    usable = {i.path.name for i in report.items}
    assert usable == {"cmyk.jpg", "grey16.png", "palette.png", "greyalpha.png", "rgba.png", "rotated.jpg", "anim.gif"}
    assert "skipped truncated.jpg" in report.summary()


def test_pillow_decompression_bomb_is_a_skip_not_a_crash(tmp_path):
    # Over twice Pillow's own limit, Image.open itself raises; that must become a skip reason too.
    d = tmp_path / "bombs"
    d.mkdir()
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 10_000
    try:
        Image.new("1", (300, 300)).save(d / "huge.png")
        report = scan_dataset(d, min_side=1, max_pixels=10**9)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert report.items == [] and "decompression-bomb" in report.skipped[0].reason


def test_odd_modes_are_converted_like_a_viewer_shows_them(odd_folder):
    report = scan_dataset(odd_folder, min_side=48, max_pixels=200_000)
    by_name = {i.path.name: i for i in report.items}
    load = lambda name, bg="white": np.asarray(load_rgb(odd_folder / name, max_pixels=10**8, background=bg))  # noqa
    cmyk = load("cmyk.jpg")
    assert by_name["cmyk.jpg"].mode == "CMYK" and cmyk.shape == (64, 80, 3)
    assert cmyk[..., 0].mean() > 200 and cmyk[..., 1:].mean() < 60  # red, not inverted
    grey = load("grey16.png")
    assert grey[:, 0].max() < 5 and grey[:, -1].min() > 250  # full range, not clipped to white
    assert 100 < grey.mean() < 155
    pal = load("palette.png")
    assert (pal[:, :32] == 255).all() and (pal[:, 32:] == [0, 200, 0]).all()  # transparent → white
    la = load("greyalpha.png")
    assert (la[:, :32] == 255).all() and (la[:, 32:] == 0).all()
    rgba_white, rgba_mean = load("rgba.png"), load("rgba.png", "mean")
    assert (rgba_white[:16] == 255).all() and (rgba_white[16:] == [0, 0, 255]).all()
    assert (rgba_mean[:16] == [0, 0, 255]).all()  # mean of the visible pixels: blue
    rot = load("rotated.jpg")
    assert (by_name["rotated.jpg"].width, by_name["rotated.jpg"].height) == (64, 96)
    assert rot.shape == (96, 64, 3) and rot[:40].mean() < 30 and rot[56:].mean() > 225
    gif = load("anim.gif")
    assert gif[..., 1].mean() > 150 and gif[..., 0].mean() < 50  # first frame (green), not the red one


def test_empty_or_all_bad_folder_is_a_clear_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    report = scan_dataset(tmp_path)
    with pytest.raises(DatasetError, match="No usable image"):
        report.require_usable()
    with pytest.raises(DatasetError, match="not found"):
        scan_dataset(tmp_path / "missing")


# ----------------------------------------------------------------------------------- captions


def test_captions_sidecar_filename_trigger_and_tag_counts(tmp_path):
    make_style_set(tmp_path / "set", 3)
    sub = tmp_path / "set" / "night"
    sub.mkdir()
    Image.new("RGB", (64, 64)).save(sub / "IMG_0042 dark_city-lights (2).jpg")
    (tmp_path / "set" / "stripes_00.txt").write_text("\ufeffred stripes,\n blue  background\n", encoding="utf-8")
    (tmp_path / "set" / "stripes_01.txt").write_text("stripy, red stripes", encoding="utf-8")
    (tmp_path / "set" / ".hidden").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "set" / ".hidden" / "x.png")
    report = scan_dataset(tmp_path / "set", trigger="stripy")
    caps = {i.path.name: (i.caption, i.caption_source) for i in report.items}
    assert caps["stripes_00.png"] == ("stripy, red stripes, blue background", "txt")
    assert caps["stripes_01.png"] == ("stripy, red stripes", "txt")  # trigger not doubled
    assert caps["stripes_02.png"] == ("stripy, stripes", "filename")
    assert caps["IMG_0042 dark_city-lights (2).jpg"] == ("stripy, dark city lights", "filename")
    assert len(report.items) == 4  # the hidden folder is ignored
    assert report.tag_frequency["stripy"] == 4 and report.tag_frequency["red stripes"] == 2
    assert report.tag_frequency_by_folder["night"] == {"stripy": 1, "dark city lights": 1}
    assert clean_filename("DSC_0001") == ""


# ----------------------------------------------------------------------------------- buckets


@pytest.mark.parametrize("size", [(512, 512), (1920, 1080), (600, 1400), (300, 200), (5000, 900)])
def test_buckets_keep_area_aspect_and_upscale_limit(size):
    w, h = size
    bw, bh = choose_bucket(w, h, resolution=512, step=64, max_upscale=1.0)
    assert bw % 64 == 0 and bh % 64 == 0 and bw * bh <= 512 * 512
    assert bw <= max(64, w) and bh <= max(64, h) or bw * bh <= w * h  # never bigger than the image itself
    assert abs(np.log((bw / bh) / (w / h))) < 0.35 or max(w, h) / min(w, h) > 4
    crop = plan_crop(w, h, (bw, bh))
    assert crop.resized[0] >= bw and crop.resized[1] >= bh
    assert 0 <= crop.left <= crop.resized[0] - bw and 0 <= crop.top <= crop.resized[1] - bh


def test_bucket_upscale_limit_allows_growth_up_to_the_factor():
    assert choose_bucket(256, 256, resolution=512, step=64, max_upscale=1.0) == (256, 256)
    assert choose_bucket(256, 256, resolution=512, step=64, max_upscale=2.0) == (512, 512)


def test_batch_plan_is_deterministic_same_bucket_and_covers_every_sample():
    buckets = [(64, 64)] * 5 + [(64, 128)] * 3
    plan = BatchPlan(buckets, batch_size=2, seed=7)
    again = BatchPlan(buckets, batch_size=2, seed=7)
    first_epoch = [plan.batch(n) for n in range(plan.batches_per_epoch)]
    assert first_epoch == [again.batch(n) for n in range(plan.batches_per_epoch)]
    assert all(len({buckets[i] for i in b}) == 1 and len(b) == 2 for b in first_epoch)
    assert {i for b in first_epoch for i in b} == set(range(8))
    second = [plan.batch(n) for n in range(plan.batches_per_epoch, 2 * plan.batches_per_epoch)]
    assert second != first_epoch  # reshuffled each epoch


# ----------------------------------------------------------------------------------- settings


def test_config_form_toml_presets_and_validation(tmp_path):
    visible = {s.name for s in describe(TrainConfig) if not s.advanced}
    assert {"name", "trigger", "steps", "rank", "learning_rate", "resolution", "batch_size"} <= visible
    assert set(TRAIN_PRESETS) == {"fast style", "quality style", "demo model"}
    run = tmp_path / "run.toml"
    run.write_text('preset = "quality style"\nsteps = 77\ntrigger = "zq"\n', encoding="utf-8")
    cfg = load_toml(run, rank=4)
    assert (cfg.steps, cfg.trigger, cfg.rank, cfg.lr_schedule) == (77, "zq", 4, "cosine")
    assert tomllib.loads(cfg.to_toml())["steps"] == 77
    run.write_text("stepz = 3\n", encoding="utf-8")
    with pytest.raises(UserError, match="stepz"):
        load_toml(run)
    with pytest.raises(UserError, match="Random crop"):
        TrainConfig(dataset_dir="d", base="b", out="x.safetensors", random_crop=True).check()
    with pytest.raises(UserError, match="Rank"):
        load_toml(_write(tmp_path / "r2.toml", "rank = 0\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from app.cli import main

    assert main(["train", str(tmp_path / "nope"), "--base", "x", "--out", str(tmp_path / "a.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Dataset folder not found" in err[0]
    assert main(["train", str(tmp_path), "--base", "x", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    make_style_set(tmp_path / "ok", 2)
    assert main(["train", str(tmp_path / "ok"), "--scan-only", "--json-events"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["items"]) == 2 and out["skipped"] == []


def test_memory_estimate_follows_the_settings_a_user_can_lower():
    from app.engine.train.preflight import estimate_peak_bytes, preflight_warning

    def est(**kw):
        args = dict(
            unet_params=860_000_000,
            other_params_on_device=0,
            lora_params=3_000_000,
            weight_bytes=2,
            batch_size=1,
            resolution=512,
            gradient_checkpointing=False,
        )
        return estimate_peak_bytes(**{**args, **kw})

    base = est()
    assert 4 * 2**30 < base < 12 * 2**30  # SD1.5 LoRA at 512 px, batch 1, bf16: a few GiB
    assert est(batch_size=4) > 2 * base and est(resolution=1024) > 2 * base
    assert est(gradient_checkpointing=True) < 0.6 * base and est(weight_bytes=4) > base
    import torch

    assert preflight_warning(10**15, torch.device("cpu")) is None  # only CUDA memory is checked
