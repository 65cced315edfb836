"""Unconditional preservation for one micro-batch: the empty prompt's text inputs, base and adapter, and the loss.

Why: a style LoRA that also changes the empty prompt's prediction changes both halves of classifier-free
guidance alike, so guidance (prediction = empty + CFG × (prompt − empty)) cancels it and the style only appears
near strength 1. Keeping the empty prompt at the base model's prediction leaves the style in the prompt side,
where guidance amplifies it (measured on the bundled styles: README, "bench/style_strength.py").
"""

from __future__ import annotations

import torch

from app.engine.train.cache import Prepared, text_inputs
from app.engine.train.lora import set_lora_enabled
from app.engine.train.model import TrainingBase
from app.engine.train.objective import preserving_loss


def preserved_denoising_loss(
    base: TrainingBase,
    data: Prepared,
    unet,
    text_encoders: list,
    scheduler,
    *,
    weight: float,
    latents,
    noise,
    timesteps,
    hidden,
    pooled,
    time_ids,
    prediction_type: str,
    snr_gamma: float,
    device,
    dtype,
) -> torch.Tensor:
    """``preserving_loss`` for this batch; ``text_encoders`` are the ones being trained (empty: text is cached)."""
    if data.empty_caption is None:
        raise RuntimeError("unconditional preservation needs the empty caption among the prepared captions")
    empty = [data.empty_caption] * len(latents)

    def adapter_enabled(on: bool) -> None:
        set_lora_enabled(unet, on)
        for te in text_encoders:
            set_lora_enabled(te, on)

    empty_hidden, empty_pooled = text_inputs(base, data, empty, text_encoders=text_encoders, device=device, dtype=dtype)
    empty_hidden_base, empty_pooled_base = empty_hidden, empty_pooled
    if text_encoders:  # the base model's reference reads the empty prompt through the base text encoders
        adapter_enabled(False)
        try:
            empty_hidden_base, empty_pooled_base = text_inputs(
                base, data, empty, text_encoders=[], device=device, dtype=dtype
            )
        finally:
            adapter_enabled(True)
    return preserving_loss(
        unet,
        scheduler,
        latents=latents,
        noise=noise,
        timesteps=timesteps,
        hidden=hidden,
        empty_hidden=empty_hidden,
        empty_hidden_base=empty_hidden_base.detach(),
        pooled=pooled,
        empty_pooled=empty_pooled,
        empty_pooled_base=None if empty_pooled_base is None else empty_pooled_base.detach(),
        time_ids=time_ids,
        prediction_type=prediction_type,
        snr_gamma=snr_gamma,
        weight=weight,
        adapter_enabled=adapter_enabled,
    )
