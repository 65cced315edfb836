"""The generation engine on tiny real models (CPU): stack semantics bit for bit, LRU, cancel, samplers, PNGs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.engine.errors import AdapterError, UserError
from app.engine.events import CancelToken, Finished, ImageReady, Preview, Progress
from app.engine.generate import SAMPLER_NAMES, GenerateConfig, Generator, LoraRef, read_png_parameters
from app.engine.generate.identity import adapter_identity
from app.engine.generate.pngmeta import read_png_text
from app.engine.shelf.stack import StackEntry
from tests.helpers.loras import make_lora


@pytest.fixture(scope="module")
def gen(tiny_sd15):
    return Generator(tiny_sd15, max_loaded_adapters=8)


def render(gen, stack, *, seed=7, steps=3):
    """Apply ``stack`` through the engine, then sample at float precision (stricter than 8-bit PNGs)."""
    import torch

    gen.apply_stack(stack)
    out = gen.pipe(
        "a lighthouse at dusk",
        num_inference_steps=steps,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.images[0]


def png_pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def config(tmp_path, stack=(), **kw):
    base = dict(prompt="a lighthouse", steps=3, width=64, height=64, seed=11, out_dir=str(tmp_path), preview_every=0)
    base.update(kw)
    return GenerateConfig(stack=list(stack), **base)


def E(path, **kw):
    return StackEntry(path=str(path), **kw)


# ------------------------------------------------------------------------------------------ stack semantics
def test_weight_zero_disabled_and_empty_stack_are_the_base_bit_for_bit(gen, sd15_loras):
    a, b = sd15_loras["a"], sd15_loras["b"]
    base = render(gen, [])
    with_a = render(gen, [E(a)])
    assert np.abs(with_a - base).max() > 1e-3, "the adapter must change the image, else nothing below is tested"
    assert np.array_equal(render(gen, [E(a, weight=0.0)]), base)
    assert np.array_equal(render(gen, [E(a, enabled=False)]), base)
    assert np.array_equal(render(gen, [E(a, weight=0.0), E(b, enabled=False, weight=1.0)]), base)
    # An adapter at weight 0 next to an active one adds nothing to it either.
    assert np.array_equal(render(gen, [E(a, weight=0.0), E(b)]), render(gen, [E(b)]))


def test_same_seed_same_stack_is_bit_identical_and_toggle_restores(gen, sd15_loras):
    a, b = sd15_loras["a"], sd15_loras["b"]
    stack = [E(a, weight=0.8), E(b, weight=-0.5)]
    first = render(gen, stack)
    assert np.array_equal(render(gen, stack), first)
    off = render(gen, [E(a, weight=0.8, enabled=False), E(b, weight=-0.5)])
    assert not np.array_equal(off, first)
    assert np.array_equal(render(gen, stack), first), "toggling off and on again must give the same image"
    assert not np.array_equal(render(gen, stack, seed=8), first)


def test_two_adapters_stacked_differ_from_each_alone_and_weights_matter(gen, sd15_loras):
    a, b = sd15_loras["a"], sd15_loras["b"]
    both = render(gen, [E(a), E(b)])
    only_a, only_b = render(gen, [E(a)]), render(gen, [E(b)])
    assert np.abs(both - only_a).max() > 1e-3 and np.abs(both - only_b).max() > 1e-3
    assert np.abs(render(gen, [E(a, weight=0.5), E(b)]) - both).max() > 1e-4


def test_text_encoder_weight_is_separate(gen, sd15_loras):
    c = sd15_loras["c"]
    full = render(gen, [E(c)])
    no_te = render(gen, [E(c, text_encoder_weight=0.0)])
    assert np.abs(full - no_te).max() > 1e-4
    # UNet part off, text-encoder part on: still differs from the base.
    assert np.abs(render(gen, [E(c, weight=0.0, text_encoder_weight=1.0)]) - render(gen, [])).max() > 1e-4


def test_fast_switch_equals_diffusers_set_adapters(gen, sd15_loras):
    stack = [E(sd15_loras["a"], weight=0.7), E(sd15_loras["c"], weight=-0.4, text_encoder_weight=0.3)]
    fast = render(gen, stack)
    gen.adapters.fast_switch = False
    try:
        slow = render(gen, stack)
        slow_base = render(gen, [E(sd15_loras["a"], enabled=False)])
    finally:
        gen.adapters.fast_switch = True
    assert np.array_equal(fast, slow)
    assert np.array_equal(slow_base, render(gen, []))


def test_lru_evicts_with_delete_adapters_and_stays_bounded(tiny_sd15, sd15_loras):
    gen = Generator(tiny_sd15, max_loaded_adapters=2)
    deleted = []
    real_delete = gen.pipe.delete_adapters

    def spy(names):
        deleted.append(names)
        return real_delete(names)

    gen.pipe.delete_adapters = spy
    a, b, c = (sd15_loras[k] for k in "abc")
    first_a = render(gen, [E(a)])
    render(gen, [E(b)])
    assert deleted == []
    render(gen, [E(c)])  # third adapter: the least recently used one (a) goes
    assert deleted == [adapter_identity(a).adapter_name]
    assert gen.adapters.names() == [adapter_identity(b).adapter_name, adapter_identity(c).adapter_name]
    listed = {n for names in gen.pipe.get_list_adapters().values() for n in names}
    assert listed == set(gen.adapters.names())
    # Re-enabling an evicted adapter reloads it and gives the very same image.
    loads = gen.adapters.loads
    assert np.array_equal(render(gen, [E(a)]), first_a)
    assert gen.adapters.loads == loads + 1 and len(gen.adapters.names()) == 2
    # A stack larger than the capacity is still applied in full (nothing it needs is evicted).
    render(gen, [E(a), E(b), E(c)])
    assert len(gen.adapters.names()) == 3
    render(gen, [E(a)])
    assert len(gen.adapters.names()) == 2


def test_renamed_copy_is_not_loaded_twice(gen, sd15_loras, tmp_path):
    copy = tmp_path / "renamed.safetensors"
    shutil.copy(sd15_loras["b"], copy)
    render(gen, [E(sd15_loras["b"])])
    loads = gen.adapters.loads
    render(gen, [E(copy)])
    assert gen.adapters.loads == loads


def test_bad_adapter_is_refused_and_generator_stays_usable(gen, sd15_loras, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"\x80\x04K\x01.")
    for bad in (junk, pickle, tmp_path / "missing.safetensors"):
        with pytest.raises(AdapterError):
            gen.apply_stack([E(bad)])
    base = render(gen, [])
    assert np.array_equal(render(gen, [E(sd15_loras["a"], enabled=False)]), base)


# ------------------------------------------------------------------------------------------ generate()
def test_generate_writes_pngs_with_events_previews_and_triggers(gen, sd15_loras, tmp_path):
    events = []
    cfg = config(tmp_path, [E(sd15_loras["a"], weight=0.8)], batch_count=2, preview_every=1, seed=None)
    images = gen.generate(cfg, on_event=events.append)
    assert len(images) == 2 and all(i.path.is_file() for i in images)
    assert images[1].seed == (images[0].seed + 1) % 2**32
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == list(range(1, 7)) and {p.total for p in progress} == {6}
    assert all(p.phase == "generate" for p in progress)
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 6
    from PIL import Image

    with Image.open(previews[-1].path) as im:
        assert im.format == "PNG" and min(im.size) >= 128
    ready = [e for e in events if isinstance(e, ImageReady)]
    assert [r.seed for r in ready] == [i.seed for i in images]
    assert isinstance(events[-1], Finished) and not events[-1].cancelled
    # The trigger phrase is put in front of the prompt, once, and the random seed is recorded.
    text = read_png_text(images[0].path)["parameters"]
    assert text.startswith("inkwash, a lighthouse <lora:style-a:0.8>")
    assert f"Seed: {images[0].seed}," in text
    # Same seed + same stack through generate(): identical PNG pixels.
    again = gen.generate(config(tmp_path / "again", [E(sd15_loras["a"], weight=0.8)], seed=images[0].seed))
    assert np.array_equal(png_pixels(again[0].path), png_pixels(images[0].path))


def test_cancel_mid_run_saves_nothing_partial(gen, tmp_path):
    token = CancelToken()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, Progress) and event.step == 5:  # second image, second step
            token.cancel()

    images = gen.generate(config(tmp_path, steps=3, batch_count=3), on_event=on_event, cancel=token)
    assert len(images) == 1
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [images[0].path.name]
    assert max(e.step for e in events if isinstance(e, Progress)) == 5, "no step may run after the cancel"
    assert isinstance(events[-1], Finished) and events[-1].cancelled


def test_every_sampler_runs(gen, tmp_path):
    pixels = {}
    for name in SAMPLER_NAMES:
        (image,) = gen.generate(config(tmp_path / name.replace(" ", "_"), sampler=name, steps=2))
        pixels[name] = png_pixels(image.path)
        assert read_png_parameters(image.path)[0]["sampler"] == name
    assert not np.array_equal(pixels["Euler"], pixels["DDIM"])


def test_ddim_never_clips_latents_whatever_the_models_scheduler_config():
    from app.engine.generate.samplers import make_scheduler

    pndm_config = {
        "_class_name": "PNDMScheduler",
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "num_train_timesteps": 1000,
        "skip_prk_steps": True,
        "steps_offset": 1,
    }
    assert make_scheduler("DDIM", pndm_config).config.clip_sample is False  # diffusers' default would clip


def test_bad_settings_are_user_errors(gen, tmp_path):
    with pytest.raises(UserError, match="multiples of 8"):
        gen.generate(config(tmp_path, width=100))
    with pytest.raises(UserError, match="Sampler"):
        gen.generate(config(tmp_path, sampler="Bogus"))
    assert list(tmp_path.glob("*.png")) == []


def test_png_round_trip_restores_settings_and_stack_by_hash(gen, sd15_loras, tmp_path):
    a, b, c = (sd15_loras[k] for k in "abc")
    stack = [E(a, weight=0.8), E(b, enabled=False, weight=0.3), E(c, weight=0.5, text_encoder_weight=0.25)]
    cfg = config(tmp_path, stack, prompt="harbour, morning", negative="blurry", seed=42, guidance=6.5,
                 sampler="Euler a", insert_triggers=False)  # fmt: skip
    (image,) = gen.generate(cfg)
    text = read_png_text(image.path)["parameters"]
    assert "<lora:style-c:0.25:0.5>" in text and "style-b" not in text
    assert f'Lora hashes: "style-a: {adapter_identity(a).autov2}, style-c: {adapter_identity(c).autov2}"' in text

    # The files were renamed since: the lookup finds them by tensor hash.
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    by_hash = {}
    for src in (a, b, c):
        dst = shelf / f"moved-{src.name}"
        shutil.copy(src, dst)
        by_hash[adapter_identity(dst).tensor_sha256] = str(dst)
    asked = []

    def lookup(ref: LoraRef):
        asked.append(ref)
        return by_hash.get(ref.sha256)

    settings, entries = read_png_parameters(image.path, lookup)
    assert settings == dict(prompt="harbour, morning", negative="blurry", seed=42, steps=3, guidance=6.5, width=64,
                            height=64, sampler="Euler a", insert_triggers=False, batch_count=1)  # fmt: skip
    assert [(e.enabled, e.weight, e.text_encoder_weight) for e in entries] == [
        (True, 0.8, None), (False, 0.3, None), (True, 0.5, 0.25)
    ]  # fmt: skip
    assert [e.path for e in entries] == [str(shelf / f"moved-{p.name}") for p in (a, b, c)]
    assert all(ref.sha256 and ref.autov2 for ref in asked)
    # Restoring then regenerating gives the same image.
    (again,) = gen.generate(GenerateConfig(**settings, stack=entries, out_dir=str(tmp_path / "re"), preview_every=0))
    assert np.array_equal(png_pixels(again.path), png_pixels(image.path))


def test_other_families_generate_with_adapters(tiny_sdxl, tiny_sd2v, tmp_path):
    import torch

    for model, family in ((tiny_sdxl, "sdxl"), (tiny_sd2v, "sd2-v")):
        lora = make_lora(model, tmp_path / f"{family}.safetensors", family=family, seed=5, scale=1.0)
        g = Generator(model)
        assert g.family == family

        def run(stack, g=g):
            g.apply_stack(stack)
            kw = dict(num_inference_steps=2, width=64, height=64, output_type="np")
            return g.pipe("a boat", generator=torch.Generator().manual_seed(3), **kw).images[0]

        base = run([])
        assert np.abs(run([E(lora)]) - base).max() > 1e-4, family
        assert np.array_equal(run([E(lora, weight=0.0)]), base), family
        (image,) = g.generate(config(tmp_path / family, [E(lora)], sampler="Euler a"))
        assert "<lora:" in read_png_text(image.path)["parameters"]


def test_swap_base_keeps_old_on_failure_and_starts_adapters_afresh(tiny_sd15, tiny_sd2v, sd15_loras, tmp_path):
    from app.engine.errors import ModelLoadError

    g = Generator(tiny_sd15)
    a = sd15_loras["a"]
    before = render(g, [E(a)])
    with pytest.raises(ModelLoadError):
        g.swap_base(tmp_path / "no-such-model")
    assert np.array_equal(render(g, [E(a)]), before)
    g.swap_base(g.pipe)  # the same pipeline handed back: its adapters are unloaded, then reload cleanly
    assert g.adapters.names() == [] and g.pipe.get_list_adapters() == {}
    assert np.array_equal(render(g, [E(a)]), before)
    g.swap_base(tiny_sd2v)
    assert g.family == "sd2-v" and g.adapters.names() == []
    g.swap_base(tiny_sd15)
    assert np.array_equal(render(g, [E(a)]), before)
