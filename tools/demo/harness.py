"""Load the bundled demo model and draw batches of prompts × seeds with it (shared by bench/ and tests/).

Sampling uses the app's own defaults (DPM++ 2M, 20 steps, CFG 7) so the figures describe what a user sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.paths import DEMO_MODEL_DIR
from tools.demo.scenes import COLOURS, SHAPES, Scene

DEFAULT_SAMPLER = "DPM++ 2M"


def load_demo_pipeline(model_dir: str | Path = DEMO_MODEL_DIR, sampler: str = DEFAULT_SAMPLER) -> Any:
    """The demo model as an fp32 StableDiffusionPipeline on the CPU, offline, with ``sampler``."""
    import torch
    from diffusers import StableDiffusionPipeline

    from app.engine.generate.samplers import make_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    pipe.scheduler = make_scheduler(sampler, dict(pipe.scheduler.config))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def draw(
    pipe: Any,
    prompts: list[str],
    seeds: list[int],
    *,
    steps: int = 20,
    guidance: float = 7.0,
    size: int = 64,
    chunk: int = 32,
) -> list[Any]:
    """One PIL image per (prompt, seed), prompt-major; each image's noise depends only on its seed."""
    import torch

    jobs = [(p, s) for p in prompts for s in seeds]
    images: list[Any] = []
    with torch.no_grad():
        for i in range(0, len(jobs), chunk):
            part = jobs[i : i + chunk]
            gens = [torch.Generator().manual_seed(s) for _, s in part]
            out = pipe(
                [p for p, _ in part],
                generator=gens,
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=size,
                width=size,
            )
            images.extend(out.images)
    return images


def quality_scenes() -> list[Scene]:
    """Every ordered (shape colour, background colour) pair once: 8 × 7 = 56 prompts, shapes in turn."""
    scenes = []
    names = list(COLOURS)
    for i, colour in enumerate(names):
        for j, background in enumerate(c for c in names if c != colour):
            scenes.append(Scene(SHAPES[(i + j) % len(SHAPES)], colour, background))
    return scenes
