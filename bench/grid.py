"""A 5×4 strength × seed comparison grid on the demo model: what the grid costs beyond sampling its cells.

Prints medians over rounds of:
- the grid (``run_grid``: one loaded base, weights switched between cells) and the sum of its cells'
  sampling time (every pipeline call timed), so grid / sum shows the per-cell set-up cost (goal ≤ 1.1×);
- the same 20 images as 20 engine calls with a reload of the base (and the style) before each;
- ``styleshelf generate`` as a separate process per image (median of a few processes, × 20).

    .venv/bin/python bench/grid.py                          # 20 steps, 64 px, 3 rounds, 2 CLI processes
    .venv/bin/python bench/grid.py --steps 10 --rounds 1 --cli-runs 0 --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

STYLE = ROOT / "styles" / "diagonal-stripes" / "diagonal-stripes.safetensors"
PROMPT = "a red circle on a blue background"
X, Y = "strength:diagonal-stripes=0-1 [5]", "seed=1-4"


def time_pipeline_calls(pipe) -> list[float]:
    """Record the wall time of every call of ``pipe``'s class (text encoding + denoising + decoding)."""
    record: list[float] = []
    cls = type(pipe)
    original = cls.__call__

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            record.append(time.perf_counter() - start)

    cls.__call__ = timed
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cli-runs", type=int, default=2, help="separate `styleshelf generate` processes to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from app.engine.generate import GenerateConfig, Generator
    from app.engine.generate.grid import GridConfig, run_grid
    from app.engine.models.loading import load_base
    from app.engine.paths import DEMO_MODEL_DIR

    def loaded_base():
        return load_base(DEMO_MODEL_DIR, device=args.device)

    work = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    os.environ.setdefault("STYLESHELF_HOME", str(work / "home"))
    generator = Generator(loaded_base())
    calls = time_pipeline_calls(generator.pipe)
    settings = GenerateConfig(prompt=PROMPT, steps=args.steps)
    warm = GridConfig(x="strength:diagonal-stripes=0,1", y="seed=1", out=str(work / "warm.png"), generate=settings)
    run_grid(warm, generator=generator)  # first calls pay one-off costs (kernels, the style's first load)

    grid_s, sampling_s, reload_s = [], [], []
    for r in range(args.rounds):
        calls.clear()
        start = time.perf_counter()
        result = run_grid(GridConfig(x=X, y=Y, out=str(work / f"grid-{r}.png"), generate=settings),
                          generator=generator)  # fmt: skip
        grid_s.append(time.perf_counter() - start)
        assert len(calls) == 20 and result.grid is not None
        sampling_s.append(sum(calls))
        print(f"round {r + 1}: grid {grid_s[-1]:.2f} s, its sampling {sampling_s[-1]:.2f} s", flush=True)

        start = time.perf_counter()
        for cell in result.plan.cells:  # the same 20 images, each after a fresh load of the base and the style
            fresh = Generator(loaded_base())
            fresh.generate(cell.config)
            del fresh
        reload_s.append(time.perf_counter() - start)
        print(f"round {r + 1}: 20 engine calls with reloads {reload_s[-1]:.2f} s", flush=True)

    cli = []
    for i in range(args.cli_runs):
        command = [sys.executable, "-m", "app.cli", "generate", "--base", str(DEMO_MODEL_DIR), "--prompt", PROMPT,
                   "--steps", str(args.steps), "--seed", "1", "--adapter", f"{STYLE}:0.5",
                   "--out", str(work / f"cli-{i}.png")]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True, env={**os.environ, "OMP_NUM_THREADS":
                                                                              str(args.threads)})  # fmt: skip
        cli.append(time.perf_counter() - start)

    g, s, rl = (statistics.median(v) for v in (grid_s, sampling_s, reload_s))
    print(f"5x4 strength x seed grid, demo model 64 px, {args.steps} steps, {args.device}, {args.threads} threads, "
          f"median of {args.rounds} rounds")  # fmt: skip
    print(f"  grid (run_grid, one loaded base)      {g:7.2f} s")
    print(f"  sum of its cells' sampling            {s:7.2f} s   grid / sampling = {g / s:.3f}  (goal <= 1.1)")
    print(f"  20 engine calls, reload before each   {rl:7.2f} s   {rl / g:.2f}x the grid")
    if cli:
        one = statistics.median(cli)
        print(f"  20 separate `styleshelf generate`     {20 * one:7.2f} s   {20 * one / g:.2f}x the grid "
              f"(median {one:.2f} s per process over {len(cli)})")  # fmt: skip


if __name__ == "__main__":
    main()
