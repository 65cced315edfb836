"""Training settings for tests: a few steps of a rank-4 adapter at 64 px on one CPU thread, with cheap samples.

Each test module passes only what it is about (its trigger, validation split, network, …)."""

from __future__ import annotations

from pathlib import Path

from app.engine.train.config import TrainConfig


def tiny_run(data: Path, base: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(
        dataset_dir=str(data),
        base=str(base),
        out=str(out),
        steps=6,
        rank=4,
        learning_rate=1e-3,
        resolution=64,
        batch_size=2,
        checkpoint_every=0,
        sample_steps=2,
        min_snr_gamma=0.0,
        validation_images=0,
        cpu_threads=1,
    )
    settings.update(overrides)
    return TrainConfig(**settings)
