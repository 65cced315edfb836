"""A training run's set-up, as one record: scan the dataset → load the base → attach LoRA → encode and
cache latents and text (main rank first) → park what the steps do not need. ``loop.train`` then runs the
steps on the ``Setup`` this returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from app.engine.errors import Cancelled, UserError
from app.engine.events import CancelToken, EventCallback, Level, Log
from app.engine.train.cache import Prepared, plan_samples, prepare
from app.engine.train.config import TrainConfig
from app.engine.train.dataset import DatasetItem, DatasetReport, hold_out, scan_training_set
from app.engine.train.lora import (
    TEXT_TARGETS,
    UNET_TARGETS,
    attach_lora,
    set_lora_enabled,
)
from app.engine.train.model import TrainingBase, load_training_base
from app.engine.train.preflight import estimate_peak_bytes, preflight_warning
from app.engine.train.validation import ValidationSet, build_validation_set


@dataclass
class Setup:
    """What set-up made ready: the base with LoRA attached and the dataset encoded. Loop and end read it."""

    base: TrainingBase
    report: DatasetReport  # the scan: skipped files, tag counts, the folder
    items: list[DatasetItem]  # the training images (held-out ones not among them)
    data: Prepared
    vset: ValidationSet
    noise_scheduler: Any  # DDPM with the run's prediction type
    prediction: str  # epsilon | v_prediction
    unet_params: list[torch.nn.Parameter]
    te_params: list[list[torch.nn.Parameter]]  # per trained text encoder

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return self.unet_params + [p for g in self.te_params for p in g]


def set_up(cfg: TrainConfig, acc, *, dtype: torch.dtype, emit: EventCallback, cancel: CancelToken) -> Setup:
    """Everything before the first step; raises Cancelled when ``cancel`` is set on the way."""
    device = acc.device

    def log(message: str, level: Level = Level.INFO) -> None:
        emit(Log(message=message, level=level))

    def stop_if_cancelled() -> None:
        if cancel.is_set():
            raise Cancelled()

    items, val_items, report = _scan(cfg, log)
    stop_if_cancelled()
    log(f"Loading base model {Path(cfg.base).name}…")
    base = load_training_base(cfg.base, dtype=dtype, device=device)
    stop_if_cancelled()  # a Cancel while the model loaded: stop now, not after caching
    prediction = (
        base.noise_scheduler.config.get("prediction_type", "epsilon")
        if cfg.prediction_type == "auto"
        else cfg.prediction_type
    )
    from diffusers import DDPMScheduler

    noise_scheduler = DDPMScheduler.from_config(base.noise_scheduler.config, prediction_type=prediction)
    base.unet.to(device)
    base.vae.to(device)
    for te in base.text_encoders:
        te.to(device)
    kind = {"network": cfg.network, "lokr_factor": cfg.lokr_factor}
    unet_params = attach_lora(
        base.unet,
        rank=cfg.rank,
        alpha=cfg.resolved_alpha(),
        targets=UNET_TARGETS[cfg.lora_targets],
        seed=cfg.seed,
        **kind,
    )
    te_params = []
    if cfg.train_text_encoder:
        for i, te in enumerate(base.text_encoders):
            te_params.append(
                attach_lora(
                    te, rank=cfg.rank, alpha=cfg.resolved_alpha(), targets=TEXT_TARGETS, seed=cfg.seed + 1 + i, **kind
                )
            )
    if device.type == "cuda":
        _log_memory_estimate(cfg, base, unet_params + [p for g in te_params for p in g], dtype, device, log)
    started = time.monotonic()
    with acc.main_process_first():  # main rank first: it fills the disk cache, the others then read it
        data, vset = _encode_dataset(cfg, base, items, val_items, device, emit, cancel)
    if cfg.cache_latents:
        log(
            f"Cached {len(data.samples)} latents ({data.cache_hits} reused from disk) in "
            f"{time.monotonic() - started:.1f} s"
        )
    if cfg.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        for te in base.text_encoders if cfg.train_text_encoder else []:
            # transformers 5 renamed it; the old name still works there but warns.
            (getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable)()
    if device.type == "cuda" and cfg.cache_latents:
        offload_idle_models(base, keep_text_encoders=cfg.train_text_encoder)
    return Setup(
        base=base,
        report=report,
        items=items,
        data=data,
        vset=vset,
        noise_scheduler=noise_scheduler,
        prediction=prediction,
        unet_params=unet_params,
        te_params=te_params,
    )


def offload_idle_models(base: TrainingBase, *, keep_text_encoders: bool) -> None:
    """Per step only the UNet (and trained text encoders) work: the rest waits on the CPU, freeing GPU
    memory. Sample rounds bring it back for a moment."""
    base.vae.to("cpu")
    if not keep_text_encoders:
        for te in base.text_encoders:
            te.to("cpu")
    torch.cuda.empty_cache()


def _scan(cfg: TrainConfig, log) -> tuple[list[DatasetItem], list[DatasetItem], DatasetReport]:
    """(training images, held-out validation images, the scan report)."""
    log(f"Scanning {cfg.dataset_dir}…")
    report = scan_training_set(cfg)
    for skipped in report.skipped:
        log(f"Skipped {skipped.path.name}: {skipped.reason}", Level.WARNING)
    report.require_usable()
    items = list(report.items)
    val_items: list[DatasetItem] = []
    if cfg.validation_images:
        if len(items) <= cfg.validation_images:
            raise UserError(
                f"Only {len(items)} usable image(s): too few to hold {cfg.validation_images} out for validation.",
                hint="Set validation_images to 0 (validate on training images).",
            )
        items, val_items = hold_out(items, cfg.validation_images, seed=cfg.seed)
    log(
        f"{len(items)} training image(s), {len(report.skipped)} skipped"
        + (f", {len(val_items)} held out for validation" if val_items else "")
    )
    return items, val_items, report


def _log_memory_estimate(
    cfg: TrainConfig,
    base: TrainingBase,
    lora_params: list[torch.nn.Parameter],
    dtype: torch.dtype,
    device: torch.device,
    log,
) -> None:
    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    estimate = estimate_peak_bytes(
        unet_params=count(base.unet),
        other_params_on_device=count(base.vae) + sum(map(count, base.text_encoders)),
        lora_params=sum(p.numel() for p in lora_params),
        weight_bytes=torch.finfo(dtype).bits // 8,
        batch_size=cfg.batch_size,
        resolution=cfg.resolution,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    log(f"Estimated peak GPU memory: {estimate / 2**30:.1f} GiB")
    warning = preflight_warning(estimate, device)
    if warning:
        log(warning, Level.WARNING)


def _encode_dataset(
    cfg: TrainConfig, base: TrainingBase, items, val_items, device, emit: EventCallback, cancel: CancelToken
) -> tuple[Prepared, ValidationSet]:
    """The training samples' latents and text (cached on disk) and the validation set."""
    samples, captions = plan_samples(
        items, resolution=cfg.resolution, step=cfg.bucket_step, max_upscale=cfg.max_upscale, flip=cfg.flip
    )
    if (cfg.caption_dropout > 0 or cfg.preserve_unconditional > 0) and "" not in captions:
        captions.append("")  # the prompt of guidance's unconditional half (dropped captions, preservation)
    for te in base.text_encoders:  # cached text is the base encoders' output, whatever LoRA they carry
        set_lora_enabled(te, False)
    vae_dtype = base.vae.dtype
    base.vae.to(dtype=torch.float32)  # a half-precision VAE can overflow when encoding (SDXL's gives NaN)
    with torch.no_grad():
        data = prepare(
            base,
            items,
            samples,
            captions,
            cache_latents=cfg.cache_latents,
            cache_text=cfg.cache_latents and not cfg.train_text_encoder,
            background=cfg.background,
            max_pixels=cfg.max_image_pixels,
            device=device,
            on_event=emit,
            cancel=cancel,
        )
        if cancel.is_set():
            raise Cancelled()
        vset = build_validation_set(base, val_items or items[:4], cfg, held_out=bool(val_items), device=device)
    base.vae.to(dtype=vae_dtype)
    for te in base.text_encoders:
        set_lora_enabled(te, True)
    return data, vset
