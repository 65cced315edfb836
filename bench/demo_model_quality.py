#!/usr/bin/env python
"""How well the bundled demo model answers prompts: the share of pictures with the asked colours.

    .venv/bin/python bench/demo_model_quality.py [--model assets/demo-model] [--seeds 4] [--save out/quality]

56 prompts ("a red circle on a blue background": every ordered pair of the 8 colours, shapes in turn) × 4
seeds, sampled as the app does (DPM++ 2M, 20 steps, CFG 7, 64 px). A picture counts as right when the median
of its border pixels is nearest the asked background colour and the pixels clearly different from that
background are nearest the asked shape colour (pixel statistics, no learned judge). Goal: ≥ 80 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    from app.engine.paths import DEMO_MODEL_DIR
    from tools.demo.harness import draw, load_demo_pipeline, quality_scenes
    from tools.demo.stats import scene_colours

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(DEMO_MODEL_DIR))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=7.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sampler", default="DPM++ 2M", help="any sampler name the app offers (default: the app's)")
    ap.add_argument("--save", default="", help="folder for a contact sheet of all pictures (optional)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    pipe = load_demo_pipeline(args.model, args.sampler)
    scenes = quality_scenes()
    seeds = list(range(args.seeds))
    t0 = time.time()
    images = draw(pipe, [s.caption() for s in scenes], seeds, steps=args.steps, guidance=args.guidance)
    secs = time.time() - t0
    bg_ok = shape_ok = both = 0
    per_prompt: list[float] = []
    misses: Counter[str] = Counter()
    for k, scene in enumerate(scenes):
        hits = 0
        for j in range(len(seeds)):
            got = scene_colours(images[k * len(seeds) + j])
            b, s = got.background == scene.background, got.shape == scene.colour
            bg_ok += b
            shape_ok += s
            both += b and s
            hits += b and s
            if not b:
                misses[f"background {scene.background}→{got.background}"] += 1
            if not s:
                misses[f"shape {scene.colour}→{got.shape}"] += 1
        per_prompt.append(hits / len(seeds))
    n = len(images)
    print(
        f"demo model quality: {len(scenes)} prompts × {len(seeds)} seeds = {n} images "
        f"({args.steps} steps {args.sampler}, CFG {args.guidance}, 64 px; {secs:.0f} s, {secs / n:.2f} s/image)"
    )
    print(f"  background colour right : {bg_ok / n:6.1%}")
    print(f"  shape colour right      : {shape_ok / n:6.1%}")
    print(f"  both right (the figure) : {both / n:6.1%}   goal ≥ 80 %")
    print(
        f"  median per-prompt hit rate {statistics.median(per_prompt):.0%}; prompts never right: "
        f"{sum(p == 0 for p in per_prompt)}"
    )
    if misses:
        print("  most common misses: " + ", ".join(f"{k} ×{v}" for k, v in misses.most_common(6)))
    if args.save:
        from PIL import Image

        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        sheet = Image.new("RGB", (64 * len(seeds) * 8, 64 * ((len(scenes) + 7) // 8)))
        for k in range(len(scenes)):
            for j in range(len(seeds)):
                sheet.paste(images[k * len(seeds) + j], (64 * (len(seeds) * (k % 8) + j), 64 * (k // 8)))
        sheet.save(out / "quality_sheet.png")
        print(f"  contact sheet: {out / 'quality_sheet.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
