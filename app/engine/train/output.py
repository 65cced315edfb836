"""What a run leaves behind: the adapter file with its metadata, and the speed figures of the summary."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from app.engine.train.config import TrainConfig

# TrainConfig fields that hold a path on the training machine: only their last name goes into a shared file.
PATH_FIELDS = ("dataset_dir", "base", "out")


def adapter_metadata(cfg: TrainConfig, *, step: int, train_images: int, out: Path,
                     tag_frequency: dict[str, dict[str, int]], summary: dict[str, Any]) -> dict[str, str]:
    """kohya's ``ss_*`` training fields (read by AUTOMATIC1111 and Civitai) plus our config and validation.

    The file is meant to be shared, so nothing in it names a place on the training machine: folders and
    files appear by their last name only (as kohya writes ``ss_sd_model_name``), the base by its hash.
    """
    return {
        "ss_resolution": f"({cfg.resolution}, {cfg.resolution})",
        "ss_steps": str(step),
        "ss_learning_rate": str(cfg.learning_rate),
        "ss_num_train_images": str(train_images),
        "ss_tag_frequency": json.dumps(tag_frequency, ensure_ascii=False),
        "ss_output_name": out.stem,
        "ss_seed": str(cfg.seed),
        "ss_lr_scheduler": cfg.lr_schedule,
        "ss_min_snr_gamma": str(cfg.min_snr_gamma),
        "ss_noise_offset": str(cfg.noise_offset),
        "ss_caption_dropout_rate": str(cfg.caption_dropout),
        "styleshelf.train_config": shareable_config_toml(cfg),
        "styleshelf.validation": json.dumps({k: summary[k] for k in (
            "validation_loss_base", "validation_loss_adapter", "validation_images", "validation_held_out")}),
    }


def shareable_config_toml(cfg: TrainConfig) -> str:
    """The run's settings with every path cut to its last name, and the base model's A1111 hash beside it."""
    import tomli_w

    from app.engine.generate.identity import base_model_hash

    data = cfg.to_dict()
    for key in PATH_FIELDS:
        data[key] = Path(data[key]).name if data[key] else ""
    data["base_hash"] = base_model_hash(Path(cfg.base).expanduser()) if cfg.base else ""
    return tomli_w.dumps(data)


def write_adapter(cfg: TrainConfig, out: Path, states: dict[str, dict], *, family: str, thumbnail,
                  extra: dict[str, str]) -> Path:
    """Kohya-layout adapter through the shared writer (atomic, fp32, ModelSpec metadata)."""
    from app.engine.adapters import save_adapter

    return save_adapter(out, unet=states["unet"], text_encoder=states.get("text_encoder"),
                        text_encoder_2=states.get("text_encoder_2"), rank=cfg.rank, alpha=cfg.resolved_alpha(),
                        family=family, title=cfg.name, trigger_phrase=cfg.trigger, thumbnail=thumbnail,
                        description=cfg.description, extra_metadata=extra)


def weights_checksum(states: dict[str, dict]) -> str:
    """A short hash of all LoRA tensors: equal on every rank of a healthy data-parallel run."""
    digest = hashlib.sha256()
    for part in sorted(states):
        for key in sorted(states[part]):
            digest.update(key.encode())
            digest.update(states[part][key].numpy().tobytes())
    return digest.hexdigest()[:16]


class RateTracker:
    """Steps per second over the last few steps (the first step includes warm-up and is not counted)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.times: list[float] = []

    def tick(self) -> float | None:
        self.times.append(time.monotonic())
        recent = self.times[-21:]
        if len(recent) < 2:
            return None
        return (len(recent) - 1) / max(1e-9, recent[-1] - recent[0])

    def overall(self) -> float | None:
        if len(self.times) < 2:
            return None
        return (len(self.times) - 1) / max(1e-9, self.times[-1] - self.times[0])

    def elapsed(self) -> float:
        return (self.times[-1] if self.times else time.monotonic()) - self.start

