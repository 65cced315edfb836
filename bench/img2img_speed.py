"""Image to image and inpainting time per picture against text to image at the same denoising steps.

An img2img run at ``steps`` and strength ``s`` denoises int(steps × s) steps (A1111 and diffusers alike), so
it is compared with a text-to-image run of that many steps: the difference is the cost of encoding the input,
building the pipeline from the loaded one (``from_pipe``) and, for inpainting, the mask and paste-back.
Prints medians over ``--repeat`` runs per cell, on the bundled demo model (64 px) by default. The three
modes run in turn (txt2img, img2img, inpaint, txt2img, …) in one process, so a shared machine's load
changes all three alike; compare the ratios, not the absolute times.

    .venv/bin/python bench/img2img_speed.py
    .venv/bin/python bench/img2img_speed.py --base MODEL --size 512 --steps 30 --strengths 0.4 0.75 --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import statistics  # noqa: E402
import time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, help="Base model (default: the bundled demo model).")
    parser.add_argument("--size", type=int, default=None, help="Picture side (default: the model's own).")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.3, 0.6, 1.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (set explicitly: shared machines)")
    parser.add_argument(
        "--style",
        default="styles/diagonal-stripes/diagonal-stripes.safetensors",
        help="An adapter stacked for every run ('' for none).",
    )
    args = parser.parse_args()

    import torch
    from PIL import Image, ImageDraw

    from app.engine.generate import GenerateConfig, Generator
    from app.engine.paths import DEMO_MODEL_DIR
    from app.engine.shelf.stack import StackEntry
    from tools.demo.scenes import Scene, render

    torch.set_num_threads(args.threads)
    gen = Generator(args.base or DEMO_MODEL_DIR)
    size = args.size or gen.native_size()
    work = Path(tempfile.mkdtemp(prefix="img2img-bench-"))
    picture, mask = work / "in.png", work / "mask.png"
    render(Scene("circle", "red", "blue", "large"), size=size).save(picture)
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).ellipse((size * 0.2, size * 0.2, size * 0.8, size * 0.8), fill=255)
    m.save(mask)
    stack = [StackEntry(args.style)] if args.style else []
    common = dict(prompt="a yellow star on a blue background", seed=1, width=size, height=size,
                  out_dir=str(work / "out"), preview_every=0, stack=stack)  # fmt: skip

    def alternating(*settings: dict) -> list[float]:
        """Median seconds per setting, the settings run in turn ``--repeat`` times after one warm-up each."""
        configs = [GenerateConfig(**{**common, **kw}) for kw in settings]
        for config in configs:
            gen.generate(config)  # warm-up: adapters loaded, caches filled
        times: list[list[float]] = [[] for _ in configs]
        for _ in range(args.repeat):
            for config, seen in zip(configs, times):
                start = time.perf_counter()
                gen.generate(config)
                seen.append(time.perf_counter() - start)
        return [statistics.median(t) for t in times]

    print(f"{size}x{size} px, {args.steps} steps, {args.threads} thread(s), "
          f"{'with ' + Path(args.style).stem if args.style else 'no style'}, median of {args.repeat} alternating runs, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"{'strength':>8} {'denoise steps':>13} {'txt2img':>9} {'img2img':>9} {'inpaint':>9} {'img2img/txt':>11} "
          f"{'inpaint/txt':>11}")  # fmt: skip
    for strength in args.strengths:
        denoise = int(args.steps * strength)
        if denoise < 1:
            continue
        t2i, i2i, inp = alternating(
            dict(steps=denoise),
            dict(steps=args.steps, strength=strength, init_image=str(picture)),
            dict(steps=args.steps, strength=strength, init_image=str(picture), mask_image=str(mask)),
        )
        print(f"{strength:>8.2f} {denoise:>13d} {t2i * 1000:>7.0f}ms {i2i * 1000:>7.0f}ms {inp * 1000:>7.0f}ms "
              f"{i2i / t2i:>11.2f} {inp / t2i:>11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
