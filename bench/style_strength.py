#!/usr/bin/env python
"""How strongly each bundled example adapter moves demo-model pictures toward its style set.

    .venv/bin/python bench/style_strength.py [--model assets/demo-model] [--prompts 12] [--seeds 2] [--save out/styles]

For each style in styles/: the same prompts (trigger word included) and seeds are drawn with the adapter at
weight 0 and at weight 1, and each picture gets the style's statistic (stripes: share of spectral energy at the
45° stripe frequency; pastel: lightness − saturation; outlines: share of dark pixels). Printed: the medians at
weight 0 and 1, the style set's own median (the target), how far weight 1 moved toward it, and in how many
prompt/seed pairs weight 1 scored higher than weight 0. --save also writes "a yellow star on a green
background" with and without each adapter.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def style_prompts(style_set, count: int, seed: int = 7) -> list[str]:
    from app.engine.train.dataset import with_trigger
    from tools.demo.scenes import random_scene

    rng = random.Random(seed)
    return [
        with_trigger(random_scene(rng, colours=style_set.colours, jitter=0.0).caption(), style_set.trigger)
        for _ in range(count)
    ]


def measure_style(pipe, style_set, prompts: list[str], seeds: list[int], root=None, **draw_kw) -> dict:
    """Draw at weight 0 and 1 and score both; the adapter is unloaded again afterwards."""
    from PIL import Image

    from app.engine.adapters import load_into_pipeline, unload_adapter
    from app.engine.paths import BUNDLED_STYLES_DIR
    from tools.demo.harness import draw
    from tools.demo.stats import style_score

    before = draw(pipe, prompts, seeds, **draw_kw)
    root = root or BUNDLED_STYLES_DIR
    report = load_into_pipeline(pipe, style_set.adapter_path(root), style_set.folder)
    try:
        pipe.set_adapters([style_set.folder], [1.0])
        after = draw(pipe, prompts, seeds, **draw_kw)
    finally:
        unload_adapter(pipe, style_set.folder)
    target = [style_score(style_set.style, Image.open(p)) for p in sorted(style_set.folder_path(root).glob("*.png"))]
    s0 = [style_score(style_set.style, im) for im in before]
    s1 = [style_score(style_set.style, im) for im in after]
    m0, m1, mt = statistics.median(s0), statistics.median(s1), statistics.median(target)
    return dict(
        w0=m0,
        w1=m1,
        target=mt,
        toward=(m1 - m0) / (mt - m0) if mt != m0 else float("nan"),
        up=sum(b > a for a, b in zip(s0, s1)),
        n=len(s0),
        matched=report.matched,
        unmatched=report.unmatched,
        before=before,
        after=after,
    )


STAR = "a yellow star on a green background"


def yellow_star_check(pipe, style_set, adapter: Path, seeds: list[int], **draw_kw) -> dict:
    """The issue's eyeball test in numbers: the plain prompt without the adapter, the prompt with the trigger at
    weight 1; in how many pictures are a green background and a yellow shape still there (named by hue, which
    stripes and pastel keep), and the style's score."""
    from app.engine.adapters import load_into_pipeline, unload_adapter
    from app.engine.train.dataset import with_trigger
    from tools.demo.harness import draw
    from tools.demo.stats import hue_layout, style_score

    before = draw(pipe, [STAR], seeds, **draw_kw)
    load_into_pipeline(pipe, adapter, style_set.folder)
    try:
        after = draw(pipe, [with_trigger(STAR, style_set.trigger)], seeds, **draw_kw)
    finally:
        unload_adapter(pipe, style_set.folder)
    layout = lambda images: sum(hue_layout(im) == ("green", "yellow") for im in images)  # noqa: E731
    score = lambda images: statistics.median(style_score(style_set.style, im) for im in images)  # noqa: E731
    return dict(
        n=len(seeds),
        w0_layout=layout(before),
        w1_layout=layout(after),
        w0=score(before),
        w1=score(after),
        before=before,
        after=after,
    )


def main(argv: list[str] | None = None) -> int:
    from app.engine.paths import BUNDLED_STYLES_DIR, DEMO_MODEL_DIR
    from tools.demo.harness import load_demo_pipeline
    from tools.demo.stylesets import STYLE_SETS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEMO_MODEL_DIR))
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sampler", default="DPM++ 2M", help="any sampler name the app offers (default: the app's)")
    ap.add_argument(
        "--styles",
        default=str(BUNDLED_STYLES_DIR),
        help="folder holding the style sets and their adapters (default: the bundled styles/)",
    )
    ap.add_argument("--save", default="", help="folder for with/without example pictures (optional)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    pipe = load_demo_pipeline(args.model, args.sampler)
    seeds = list(range(args.seeds))
    print(
        f"style strength on the demo model: {args.prompts} prompts × {len(seeds)} seeds per style, "
        f"{args.sampler} {args.steps} steps, CFG 7, 64 px; medians"
    )
    for s in STYLE_SETS:
        adapter = s.adapter_path(args.styles)
        if not adapter.exists():
            print(f"  {s.folder:17s} no adapter at {adapter}")
            continue
        t0 = time.time()
        r = measure_style(pipe, s, style_prompts(s, args.prompts), seeds, root=args.styles, steps=args.steps)
        print(
            f"  {s.folder:17s} {s.measure}: weight 0 {r['w0']:.3f} → weight 1 {r['w1']:.3f} "
            f"(style set {r['target']:.3f}); moved {r['toward']:.0%} of the way; higher in {r['up']}/{r['n']} "
            f"pairs; modules matched {r['matched']}, unmatched {r['unmatched']} ({time.time() - t0:.0f} s)"
        )
        star = yellow_star_check(pipe, s, adapter, list(range(max(4, args.seeds))), steps=args.steps)
        print(
            f'  {"":17s} "{STAR}": both colours seen (by hue) {star["w0_layout"]}/{star["n"]} at weight 0, '
            f"{star['w1_layout']}/{star['n']} at weight 1; style score median {star['w0']:.3f} → {star['w1']:.3f}"
        )
        if args.save:
            from PIL import Image

            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            sheet = Image.new("RGB", (64 * star["n"], 128))
            for j, (plain, styled) in enumerate(zip(star["before"], star["after"])):
                sheet.paste(plain, (64 * j, 0))
                sheet.paste(styled, (64 * j, 64))
            sheet.resize((sheet.width * 4, sheet.height * 4), Image.NEAREST).save(out / f"yellow-star_{s.folder}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
