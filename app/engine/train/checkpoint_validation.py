"""Did each checkpoint learn? The held-out denoising loss (base vs adapter) of every kept checkpoint of a run.

The same measure the run reports at its end (``validation.py``: the run's held-out images, its seed, fixed
noise and timesteps), applied to each ``<adapter>.checkpoints/step-*``, so choosing a checkpoint on a grid is
not by eye alone. The latents and captions come from the run's disk cache, so this costs a base model load
and a few forward passes per checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from app.engine.errors import UserError
from app.engine.events import NEVER_CANCEL, CancelToken, EventCallback, Progress, ignore_event
from app.engine.train.checkpoint_export import run_paths
from app.engine.train.checkpoints import list_checkpoints, split_parts


@torch.no_grad()
def validate_checkpoints(adapter: str | Path, *, on_event: EventCallback = ignore_event,
                         cancel: CancelToken = NEVER_CANCEL) -> dict[int, tuple[float, float]]:  # fmt: skip
    """``{step: (base loss, adapter loss)}`` for every kept checkpoint of ``adapter``'s run (CPU, fp32)."""
    from diffusers import DDPMScheduler
    from safetensors.torch import load_file

    from app.engine.train.config import TrainConfig
    from app.engine.train.dataset import hold_out, scan_training_set
    from app.engine.train.lora import TEXT_TARGETS, UNET_TARGETS, attach_lora, load_lora_state_dict
    from app.engine.train.model import load_training_base
    from app.engine.train.validation import adapter_conditioning, base_and_adapter_loss, build_validation_set

    run_dir, _ = run_paths(adapter)
    kept = list_checkpoints(run_dir)
    if not kept:
        raise UserError(f"{Path(adapter).name}: its run kept no checkpoints ({run_dir}).")
    saved = json.loads((kept[-1] / "state.json").read_text(encoding="utf-8")).get("config", {})
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    if not Path(cfg.dataset_dir).is_dir():
        raise UserError(f"The run's dataset {cfg.dataset_dir} is gone: its validation images cannot be read.")
    report = scan_training_set(cfg)
    report.require_usable()
    items, val_items = list(report.items), []
    if cfg.validation_images and len(items) > cfg.validation_images:
        items, val_items = hold_out(items, cfg.validation_images, seed=cfg.seed)  # the run's own split
    base = load_training_base(cfg.base)
    prediction = (base.noise_scheduler.config.get("prediction_type", "epsilon")
                  if cfg.prediction_type == "auto" else cfg.prediction_type)  # fmt: skip
    scheduler = DDPMScheduler.from_config(base.noise_scheduler.config, prediction_type=prediction)
    device = torch.device("cpu")
    vset = build_validation_set(base, val_items or items[:4], cfg, held_out=bool(val_items), device=device)
    kind = {"network": cfg.network, "lokr_factor": cfg.lokr_factor}
    attach_lora(base.unet, rank=cfg.rank, alpha=cfg.resolved_alpha(), targets=UNET_TARGETS[cfg.lora_targets],
                seed=cfg.seed, **kind)  # fmt: skip
    if cfg.train_text_encoder:
        for i, te in enumerate(base.text_encoders):
            attach_lora(te, rank=cfg.rank, alpha=cfg.resolved_alpha(), targets=TEXT_TARGETS, seed=cfg.seed + 1 + i,
                        **kind)  # fmt: skip
    figures: dict[int, tuple[float, float]] = {}
    for done, folder in enumerate(kept, 1):
        if cancel.is_set():
            break
        parts = split_parts(load_file(str(folder / "lora.safetensors")))
        load_lora_state_dict(base.unet, parts.get("unet", {}))
        for i, te in enumerate(base.text_encoders if cfg.train_text_encoder else []):
            load_lora_state_dict(te, parts.get(f"text_encoder{'' if i == 0 else '_2'}", {}))
        if cfg.train_text_encoder:
            vset.adapter_hidden, vset.adapter_pooled = adapter_conditioning(base, vset)
        figures[int(folder.name[5:])] = base_and_adapter_loss(base.unet, scheduler, vset, prediction_type=prediction,
                                                              seed=cfg.seed, dtype=torch.float32)  # fmt: skip
        on_event(Progress(step=done, total=len(kept), phase="validate"))
    return figures
