"""The end of a training run: its ``TrainSummary``, the check that every process trained the same weights,
and the adapter file with the run's facts. ``loop._Run._finish`` decides what happens at the end (a
checkpoint, validation, final samples); this module holds the parts that only describe and write it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine.events import TrainFinished, TrainSummary
from app.engine.train.config import TrainConfig
from app.engine.train.output import (
    RunFacts,
    adapter_metadata,
    images_per_folder,
    weights_checksum,
    write_adapter,
)
from app.engine.train.run_state import checkpoint_step
from app.engine.train.sampling import adapter_half, thumbnail_of

if TYPE_CHECKING:  # pragma: no cover
    from app.engine.train.loop import LoopEnd, Setup


def run_summary(
    setup: Setup, end: LoopEnd, *, total: int, losses: tuple[float | None, float | None], checksums: list[str]
) -> TrainSummary:
    """What was trained, how fast, and what validation found (None when a cancelled run skipped it)."""
    base_loss, adapter_loss = losses
    train_losses = end.losses
    last = train_losses[-10:]
    return TrainSummary(
        steps=end.step,
        total_steps=total,
        started_at_step=end.start,
        cancelled=end.cancelled,
        train_images=len(setup.items),
        skipped_images=len(setup.report.skipped),
        validation_images=len(setup.vset.latents),
        validation_held_out=setup.vset.held_out,
        validation_loss_base=base_loss,
        validation_loss_adapter=adapter_loss,
        validation_change=(adapter_loss - base_loss) / base_loss if base_loss else None,  # type: ignore[operator]
        final_loss=train_losses[-1] if train_losses else None,
        mean_loss_last_10=sum(last) / len(last) if last else None,
        it_per_s=end.tracker.overall(),
        seconds=end.tracker.elapsed(),
        processes=len(checksums),
        rank_checksums=checksums,
        ranks_in_sync=len(set(checksums)) == 1,
        family=setup.base.family,
    )


def nothing_saved(cfg: TrainConfig, kept_checkpoint: Path | None) -> TrainFinished:
    """A run stopped before its first (new) step: no file written; a resumed run's checkpoint is still there."""
    return TrainFinished(
        output="",
        cancelled=True,
        summary=TrainSummary(
            steps=checkpoint_step(kept_checkpoint) if kept_checkpoint else 0,
            total_steps=cfg.steps,
            cancelled=True,
            saved=[],
            checkpoint=str(kept_checkpoint or ""),
        ),
    )


def rank_checksums(states: dict[str, dict], world: int) -> list[str]:
    """Every process's LoRA weights checksum (rank order): equal on all of them in a healthy run."""
    mine = weights_checksum(states)
    if world == 1:
        return [mine]
    from accelerate.utils import gather_object

    return list(gather_object([mine]))


def write_run_adapter(
    cfg: TrainConfig,
    out: Path,
    setup: Setup,
    states: dict[str, dict],
    *,
    step: int,
    sample: Path | None,
    summary: TrainSummary,
    started_at: float,
) -> Path:
    """The adapter file: the LoRA weights, the best sample's adapter half as its shelf picture, kohya's
    training fields and our config and validation."""
    thumb = thumbnail_of(adapter_half(sample)) if sample else None
    run = RunFacts(
        started_at=started_at,
        finished_at=time.time(),
        family=setup.base.family,
        images_per_folder=images_per_folder([i.path for i in setup.items], setup.report.folder),
        buckets=[s.bucket for s in setup.data.samples],
    )
    extra = adapter_metadata(
        cfg,
        step=step,
        train_images=len(setup.items),
        out=out,
        tag_frequency=setup.report.tag_frequency_by_folder,
        summary=summary,
        run=run,
    )
    return write_adapter(cfg, out, states, family=setup.base.family, thumbnail=thumb, extra=extra)
