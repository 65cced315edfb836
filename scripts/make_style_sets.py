#!/usr/bin/env python
"""Write the three bundled example style sets under styles/: images, captions and a README each.

    .venv/bin/python scripts/make_style_sets.py [--out styles] [--count 20]

Every image is a demo scene ("a red circle on a blue background") drawn in the style; its caption names only
the content, so an adapter trained on the folder learns the look (stripes, pastel, outlines), not the scenes.
The adapters themselves are trained by the same command users run (see each README).
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.engine.atomic import atomic_path, atomic_write_text  # noqa: E402
from app.engine.paths import BUNDLED_STYLES_DIR  # noqa: E402
from tools.demo.scenes import random_scene, render  # noqa: E402
from tools.demo.stylesets import STYLE_SETS, StyleSet  # noqa: E402

# LoRA on the convolutions too: stripes and outlines are spatial patterns that attention alone barely draws.
# Partial-strength training (each style's share in tools/demo/stylesets.py), so weight 0.5 on the shelf shows
# about half of each look (plain training left weight 0.5 at 2-16 % of the way to the style set); it needs more
# steps than plain training.
ADAPTER_SETTINGS = [
    "--resolution",
    "64",
    "--steps",
    "1500",
    "--rank",
    "8",
    "--lr",
    "1e-3",
    "--batch-size",
    "4",
    "--set",
    "lora_targets=attention+ff+conv",
    "--set",
    "cpu_threads=1",
    "--set",
    "checkpoint_every=0",
]


def train_args(s: StyleSet) -> list[str]:
    """The `styleshelf train` arguments that made the shipped adapter (run from the repo root)."""
    return [
        "train",
        f"styles/{s.folder}",
        "--base",
        "assets/demo-model",
        "--out",
        f"styles/{s.folder}/{s.folder}.safetensors",
        "--trigger",
        s.trigger,
        "--name",
        s.title,
        "--sample-prompt",
        f"{s.trigger}, a yellow star on a green background",
        *ADAPTER_SETTINGS,
        "--set",
        f"caption_dropout={s.caption_dropout}",
        "--set",
        f"partial_strength={s.partial_strength}",
    ]


def train_command(s: StyleSet) -> str:
    return ".venv/bin/python -m app.cli " + " ".join(shlex.quote(a) for a in train_args(s))


def readme(s: StyleSet, count: int) -> str:
    return f"""# {s.title}

{count} procedurally drawn 64×64 scenes in one look: {s.look}.

Each `NN.png` has an `NN.txt` caption that names only the content (for example `a red circle on a blue
background`), so the adapter learns the look, not the scenes.

- Trigger word: `{s.trigger}` (prepended to every caption in training; put it in your prompt)
- Adapter: `{s.folder}.safetensors`, trained on the bundled demo model (`assets/demo-model`) with the same command
  users run:

```sh
{train_command(s)}
```

Regenerate the images with `.venv/bin/python scripts/make_style_sets.py` (seed {s.seed}; the images are deterministic).
`bench/style_strength.py` measures how far the adapter moves pictures toward this look.
"""


def write_set(s: StyleSet, root: Path, count: int) -> None:
    folder = root / s.folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(s.seed)
    for i in range(count):
        scene = random_scene(rng, colours=s.colours, jitter=0.08)
        with atomic_path(folder / f"{i:02d}.png") as tmp:
            render(scene, style=s.style).save(tmp, format="PNG")
        atomic_write_text(folder / f"{i:02d}.txt", scene.caption() + "\n")
    atomic_write_text(folder / "README.md", readme(s, count))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(BUNDLED_STYLES_DIR))
    ap.add_argument("--count", type=int, default=60, help="images per style (20 taught the adapters the scenes too)")
    ap.add_argument(
        "--train",
        action="store_true",
        help="then train each adapter on assets/demo-model with `styleshelf train` (all three at once)",
    )
    args = ap.parse_args(argv)
    for s in STYLE_SETS:
        write_set(s, Path(args.out), args.count)
        print(f"wrote {args.count} images to {Path(args.out) / s.folder}")
    if args.train:
        # Concurrently: each run is single-threaded, so three of them use the cores a single run leaves idle.
        runs = [subprocess.Popen([sys.executable, "-m", "app.cli", *train_args(s)], cwd=REPO) for s in STYLE_SETS]
        codes = [r.wait() for r in runs]
        for s in STYLE_SETS:
            # Training leaves resumable checkpoints (LoRA files themselves) and sample images beside the adapter;
            # in a bundled style folder the shelf would list those checkpoints as adapters, so they go.
            adapter = REPO / "styles" / s.folder / f"{s.folder}.safetensors"
            for extra in (
                adapter.with_name(adapter.stem + ".checkpoints"),
                adapter.with_name(adapter.stem + ".samples"),
            ):
                shutil.rmtree(extra, ignore_errors=True)
        if any(codes):
            print(f"training failed: exit codes {codes}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
