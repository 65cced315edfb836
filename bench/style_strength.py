#!/usr/bin/env python
"""How strongly each bundled example adapter moves demo-model pictures toward its style set.

    .venv/bin/python bench/style_strength.py [--model assets/demo-model] [--prompts 12] [--seeds 2] [--save out/styles]

For each style in styles/: the same prompts (trigger word included) and seeds are drawn with the adapter at
weight 0, 0.5 and 1, and each picture gets the style's statistic (stripes: share of spectral energy at the
45° stripe frequency; pastel: lightness − saturation; outlines: share of dark pixels). Printed: the medians,
the style set's own median (the target), how far weights 0.5 and 1 moved toward it, and in how many
prompt/seed pairs they scored higher than weight 0; then whether "a yellow star on a green background" keeps
its colours (by hue) at each weight. --save writes those pictures (rows: no adapter, weight 0.5, weight 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tools.demo.style_strength import STAR, WEIGHTS, measure_style, style_prompts, yellow_star_check  # noqa: E402


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
    ap.add_argument("--only", nargs="*", default=[], help="style folders to measure (default: all three)")
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
        if args.only and s.folder not in args.only:
            continue
        adapter = s.adapter_path(args.styles)
        if not adapter.exists():
            print(f"  {s.folder:17s} no adapter at {adapter}")
            continue
        t0 = time.time()
        r = measure_style(pipe, s, style_prompts(s, args.prompts), seeds, root=args.styles, steps=args.steps)
        moved = "; ".join(
            f"weight {w:g}: {r[w]['median']:.3f}, {r[w]['toward']:.0%} of the way, higher in {r[w]['up']}/{r['n']}"
            for w in WEIGHTS
        )
        print(
            f"  {s.folder:17s} {s.measure}: weight 0 {r['w0']:.3f}, style set {r['target']:.3f}; {moved}; "
            f"modules matched {r['matched']}, unmatched {r['unmatched']} ({time.time() - t0:.0f} s)"
        )
        star = yellow_star_check(pipe, s, adapter, list(range(max(4, args.seeds))), steps=args.steps)
        seen = ", ".join(f"{star[w]['layout']}/{star['n']} at weight {w:g}" for w in WEIGHTS)
        scores = " / ".join(f"{star[w]['score']:.3f}" for w in WEIGHTS)
        print(
            f'  {"":17s} "{STAR}": both colours seen (by hue) {star["w0_layout"]}/{star["n"]} at weight 0, {seen}; '
            f"style score {star['w0']:.3f} → {scores}"
        )
        if args.save:
            from PIL import Image

            out = Path(args.save)
            out.mkdir(parents=True, exist_ok=True)
            rows = [star["before"], *(star[w]["images"] for w in WEIGHTS)]
            sheet = Image.new("RGB", (64 * star["n"], 64 * len(rows)))
            for i, row in enumerate(rows):
                for j, picture in enumerate(row):
                    sheet.paste(picture, (64 * j, 64 * i))
            sheet.resize((sheet.width * 4, sheet.height * 4), Image.NEAREST).save(out / f"yellow-star_{s.folder}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
