"""The bundled demo: its model loads offline and answers a prompt, its example adapters load cleanly and move
pictures toward their style, and the committed assets are what the committed scripts make."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from app.engine.paths import DEMO_MODEL_DIR
from tools.demo.scenes import COLOURS, STYLES, Scene, random_scene, render
from tools.demo.stats import hue_layout, scene_colours, style_score
from tools.demo.stylesets import STYLE_SETS

needs_model = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model_index.json").exists(), reason="demo model not built")


# --- the pixel statistics the benches rely on, checked on drawn scenes with known answers -------------------


def test_scene_colours_names_drawn_scenes():
    rng = random.Random(5)
    for _ in range(60):
        scene = random_scene(rng)
        got = scene_colours(render(scene))
        assert (got.background, got.shape) == (scene.background, scene.colour), scene.caption()


def test_scene_colours_sees_no_shape_on_a_plain_picture():
    plain = Image.new("RGB", (64, 64), COLOURS["green"])
    got = scene_colours(plain)
    assert got.background == "green" and got.shape is None


def test_hue_layout_names_scenes_through_every_style():
    # Light stripes make half the pixels near-white, outlines add dark ink; hue still names both colours.
    chromatic = tuple(c for c in COLOURS if c not in ("white", "black"))
    rng = random.Random(3)
    for _ in range(40):
        scene = random_scene(rng, colours=chromatic)
        for style in (None, *STYLES):
            assert hue_layout(render(scene, style=style)) == (scene.background, scene.colour), (style, scene)
    assert hue_layout(Image.new("RGB", (64, 64), COLOURS["green"])) == ("green", None)


@pytest.mark.parametrize("style", STYLES)
def test_each_style_statistic_separates_its_style(style):
    rng = random.Random(11)
    scenes = [random_scene(rng, colours=tuple(c for c in COLOURS if c not in ("white", "black"))) for _ in range(20)]
    plain = [style_score(style, render(s)) for s in scenes]
    styled = [style_score(style, render(s, style=style)) for s in scenes]
    assert min(styled) > max(plain), (style, max(plain), min(styled))


def test_captions_name_content_only():
    assert Scene("star", "yellow", "green", "large").caption() == "a large yellow star on a green background"
    assert Scene("circle", "red", "blue").caption() == "a red circle on a blue background"


def test_demo_caption_table_labels_masks_and_prefixes():
    from transformers import CLIPTokenizer

    from app.engine.paths import TOKENIZER_DIR
    from tools.demo.attributes import FIELDS, IGNORE, AttributeHeads, CaptionTable, prefix_words

    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    rng = random.Random(2)
    scenes = [random_scene(rng) for _ in range(200)]
    table = CaptionTable.build(tok, scenes, seed=1, prefixed_share=0.25)
    texts = tok.batch_decode(table.ids[table.of_image], skip_special_tokens=True)
    prefixed = [t for t, s in zip(texts, scenes) if not t.startswith(s.caption())]
    assert 25 <= len(prefixed) <= 75 and all(t.endswith(s.caption()) for t, s in zip(texts, scenes))
    assert not {*COLOURS, "background"} & set(prefix_words(tok))  # a prefix never names a scene colour
    first = scenes[0]
    row = table.of_image[0]
    assert table.labels[row].tolist() == [values.index(getattr(first, f)) for f, values in FIELDS.items()]
    assert (table.labels[table.empty] == IGNORE).all()
    eos = int((table.ids[row] == tok.eos_token_id).int().argmax())
    assert not table.mask[row, :eos].any() and table.mask[row, eos:].all()
    # The read-out loss is finite with the empty (unlabelled) caption in the batch.
    import torch

    heads = AttributeHeads(8)
    states = torch.randn(2, 77, 8)
    rows = torch.tensor([int(row), table.empty])
    assert torch.isfinite(heads.loss(states, table.mask[rows], table.labels[rows]))


# --- the shipped style sets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style_set", STYLE_SETS, ids=lambda s: s.folder)
def test_style_folder_is_complete_and_reproducible(style_set, tmp_path):
    import importlib.util

    from app.engine.paths import REPO_ROOT

    folder = style_set.folder_path()
    pngs = sorted(folder.glob("*.png"))
    assert 40 <= len(pngs) <= 80
    for png in pngs:
        caption = png.with_suffix(".txt").read_text(encoding="utf-8").strip()
        assert caption.startswith("a ") and caption.endswith(" background")
        assert style_set.trigger not in caption  # the trigger is added by training, not baked into captions
    assert "Trigger word" in (folder / "README.md").read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("make_style_sets", REPO_ROOT / "scripts" / "make_style_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_set(style_set, tmp_path, len(pngs))
    for png in pngs:
        again = tmp_path / style_set.folder / png.name
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(again))), png.name
        assert png.with_suffix(".txt").read_text() == again.with_suffix(".txt").read_text()


# --- the shipped model --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_pipe():
    import torch

    from tools.demo.harness import load_demo_pipeline

    torch.set_num_threads(2)
    return load_demo_pipeline()


@needs_model
def test_demo_model_fits_the_size_budget_and_loads_as_fp32(demo_pipe):
    import torch

    size = sum(f.stat().st_size for f in DEMO_MODEL_DIR.rglob("*") if f.is_file())
    assert size <= 25 * 1024 * 1024
    for part in (demo_pipe.unet, demo_pipe.vae, demo_pipe.text_encoder):
        assert next(part.parameters()).dtype == torch.float32
    assert demo_pipe.vae.config.scaling_factor != 0.18215  # measured on the trained autoencoder's latents


@pytest.fixture(scope="module")
def asked_colour_pictures(demo_pipe):
    """Eight prompts (every colour once as shape, once as background) × two seeds, as the app draws them."""
    from tools.demo.harness import draw, quality_scenes

    scenes = quality_scenes()[::7]
    images = draw(demo_pipe, [s.caption() for s in scenes], [0, 1])
    return [(scene, scene_colours(im)) for scene, im in zip((s for s in scenes for _ in (0, 1)), images)], images[0]


@needs_model
def test_demo_model_draws_the_asked_background(asked_colour_pictures):
    got, image = asked_colour_pictures
    assert image.size == (64, 64)
    right = [scene.background == seen.background for scene, seen in got]
    assert sum(right) >= 14, [(s.caption(), c) for s, c in got]  # bench: 97 % (the previous model: 65 %)
    assert all(seen.shape is not None for _, seen in got)  # a shape is drawn on it


@needs_model
def test_demo_model_draws_the_asked_shape_colour(asked_colour_pictures):
    got, _ = asked_colour_pictures
    both = [(scene.background, scene.colour) == (seen.background, seen.shape) for scene, seen in got]
    assert sum(both) >= 12, [(s.caption(), c) for s, c in got]  # bench: 92 % (the previous model: 22 %)


@needs_model
def test_demo_vae_round_trips_colours(demo_pipe):
    import torch

    from tools.demo.scenes import image_to_tensor_array

    scenes = [Scene("square", "orange", "purple"), Scene("circle", "white", "black", "large")]
    x = torch.from_numpy(np.stack([image_to_tensor_array(render(s)) for s in scenes]))
    with torch.no_grad():
        rec = demo_pipe.vae.decode(demo_pipe.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    assert float((rec - x).abs().mean() * 127.5) < 15  # a random VAE is off by ~90
    for s, r in zip(scenes, rec):
        img = ((r.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        got = scene_colours(img)
        assert (got.background, got.shape) == (s.background, s.colour)


@needs_model
def test_demo_vae_round_trips_pastel_colours(demo_pipe):
    """Pastel tints survive the autoencoder, so the pastel style can draw them: the error build.json reports, and
    pastel scenes keep their colours by hue (before the tuning pastel green came back lavender)."""
    import json

    import torch

    from tools.demo.scenes import image_to_tensor_array
    from tools.demo.vae_tune import pastel_swatch_error, round_trip

    error = pastel_swatch_error(demo_pipe.vae)
    facts = json.loads((DEMO_MODEL_DIR / "build.json").read_text(encoding="utf-8"))
    assert error == pytest.approx(facts["vae_pastel_swatch_error_255"], abs=0.05)
    assert error < 8, error  # 16.9 levels before the tuning stage
    # Chromatic colours only (hue names white and black by their faint tint). Measured over every pair of them:
    # 54 of 60 large pastel circles keep both hue names; the misses are neighbouring warm tints (pastel red on blue
    # reads orange).
    scenes = [
        Scene("star", "yellow", "green", "large"),
        Scene("circle", "green", "blue", "large"),
        Scene("square", "purple", "orange", "large"),
        Scene("triangle", "blue", "red", "large"),
    ]
    x = torch.from_numpy(np.stack([image_to_tensor_array(render(s, style="pastel")) for s in scenes]))
    for s, r in zip(scenes, round_trip(demo_pipe.vae, x)):
        img = ((r.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        assert hue_layout(img) == (s.background, s.colour), s


@needs_model
@pytest.mark.parametrize("style_set", STYLE_SETS, ids=lambda s: s.folder)
def test_shipped_adapter_shows_its_style_at_full_and_half_strength(demo_pipe, style_set):
    """The issue's bar, on fewer pictures than bench/style_strength.py: at weight 1 a style moves pictures ≥ 70 %
    of the way to its set's statistic and at weight 0.5 visibly (≥ 30 %), so an artist trying 0.5 sees it."""
    from app.engine.adapters import read_adapter_info
    from tools.demo.style_strength import measure_style, style_prompts

    path = style_set.adapter_path()
    if not path.exists():
        pytest.skip(f"adapter not trained yet: {path.name}")
    assert read_adapter_info(path).thumbnail, "the shelf shows the adapter's embedded thumbnail"
    # 6 prompts × 2 seeds: with 3 prompts a median sits one odd picture away from the bar (bench: 12 × 2).
    got = measure_style(demo_pipe, style_set, style_prompts(style_set, 6), [0, 1])
    assert got["matched"] > 0 and got["unmatched"] == 0
    figures = {w: round(got[w]["toward"], 2) for w in (0.5, 1.0)}
    assert got[1.0]["toward"] >= 0.7, (style_set.folder, figures)
    assert got[0.5]["toward"] >= 0.3, (style_set.folder, figures)
    assert got[0.5]["up"] >= 10 and got[1.0]["up"] >= 10, (style_set.folder, got[0.5]["up"], got[1.0]["up"])


@needs_model
@pytest.mark.parametrize("style_set", STYLE_SETS, ids=lambda s: s.folder)
def test_yellow_star_stays_yellow_on_green_with_every_style(demo_pipe, style_set):
    """The scene survives the style: "a yellow star on a green background" keeps both colours by hue (which
    stripes, pastel tints and outlines all keep) without the adapter and at weights 0.5 and 1."""
    from tools.demo.style_strength import WEIGHTS, yellow_star_check

    path = style_set.adapter_path()
    if not path.exists():
        pytest.skip(f"adapter not trained yet: {path.name}")
    star = yellow_star_check(demo_pipe, style_set, path, [0, 1, 2, 3])
    seen = {0: star["w0_layout"], **{w: star[w]["layout"] for w in WEIGHTS}}
    # Every seed with the style (measured 4/4 at 0.5 and 1 for all three); the plain model itself has a dark,
    # vignetted border in some pictures of this prompt, so one miss is allowed there.
    assert seen[0] >= 3 and seen[0.5] == seen[1.0] == 4, (style_set.folder, seen)
    assert star[1.0]["score"] > star["w0"], (style_set.folder, star["w0"], star[1.0]["score"])  # styled, too
