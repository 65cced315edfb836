"""What a run leaves behind: the adapter file with its metadata, and the speed figures of the summary."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from app.engine.events import Finished
from app.engine.train.config import TrainConfig
from app.engine.train.run_state import checkpoint_step


def adapter_metadata(cfg: TrainConfig, *, step: int, train_images: int, out: Path,
                     tag_frequency: dict[str, dict[str, int]], summary: dict[str, Any]) -> dict[str, str]:
    """kohya's ``ss_*`` training fields (read by AUTOMATIC1111 and Civitai) plus our config and validation."""
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
        "styleshelf.train_config": cfg.to_toml(),
        "styleshelf.validation": json.dumps({k: summary[k] for k in (
            "validation_loss_base", "validation_loss_adapter", "validation_images", "validation_held_out")}),
    }


def write_adapter(cfg: TrainConfig, out: Path, states: dict[str, dict], *, family: str, thumbnail,
                  extra: dict[str, str]) -> Path:
    """Kohya-layout adapter through the shared writer (atomic, fp32, ModelSpec metadata)."""
    from app.engine.adapters import save_adapter

    return save_adapter(out, unet=states["unet"], text_encoder=states.get("text_encoder"),
                        text_encoder_2=states.get("text_encoder_2"), rank=cfg.rank, alpha=cfg.resolved_alpha(),
                        family=family, title=cfg.name, trigger_phrase=cfg.trigger, thumbnail=thumbnail,
                        description=cfg.description, extra_metadata=extra)


def run_summary(*, step: int, start: int, total: int, cancelled: bool, items: int, skipped: int, vset,
                losses: tuple[float | None, float | None], train_losses: list[float], tracker: RateTracker,
                checksums: list[str], family: str) -> dict[str, Any]:
    """The Finished event's summary: what was trained, how fast, and what validation found (None when a
    cancelled run skipped it)."""
    base_loss, adapter_loss = losses
    last = train_losses[-10:]
    return {
        "steps": step,
        "total_steps": total,
        "started_at_step": start,
        "cancelled": cancelled,
        "train_images": items,
        "skipped_images": skipped,
        "validation_images": len(vset.latents),
        "validation_held_out": vset.held_out,
        "validation_loss_base": base_loss,
        "validation_loss_adapter": adapter_loss,
        "validation_change": (adapter_loss - base_loss) / base_loss if base_loss else None,
        "final_loss": train_losses[-1] if train_losses else None,
        "mean_loss_last_10": sum(last) / len(last) if last else None,
        "it_per_s": tracker.overall(),
        "seconds": tracker.elapsed(),
        "processes": len(checksums),
        "rank_checksums": checksums,
        "ranks_in_sync": len(set(checksums)) == 1,
        "family": family,
    }


def nothing_saved(cfg: TrainConfig, kept_checkpoint: Path | None) -> Finished:
    """A run stopped before its first (new) step: no file written; a resumed run's checkpoint is still there."""
    return Finished(output="", cancelled=True, summary={
        "steps": checkpoint_step(kept_checkpoint) if kept_checkpoint else 0, "total_steps": cfg.steps,
        "cancelled": True, "saved": [], "checkpoint": str(kept_checkpoint or "")})


def smoothed_loss(losses: list[float]) -> float | None:
    """The running average the progress events carry, rebuilt from a resumed run's history."""
    smoothed = None
    for value in losses:
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
    return smoothed


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

