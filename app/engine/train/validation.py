"""Did it learn? Denoising loss of the base vs the adapter on fixed images, noise and timesteps.

On a style set, pixels from a briefly trained adapter can look unchanged while the loss has clearly
dropped; the same images, noise and timesteps for both numbers make the comparison fair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.engine.train.lora import set_lora_enabled
from app.engine.train.objective import denoising_loss, step_generator

# Spread over the schedule (out of 1000); the same for every run so numbers compare across runs.
VALIDATION_TIMESTEPS = (100, 300, 500, 700, 900)


@dataclass
class ValidationSet:
    latents: list[torch.Tensor]  # (C, h, w) each
    hidden: list[torch.Tensor]  # (77, D) each
    pooled: list[torch.Tensor | None]
    time_ids: list[torch.Tensor | None]
    held_out: bool  # True: images never trained on
    # Conditioning through the trained text-encoder LoRA (when it is trained); None = same as ``hidden``.
    adapter_hidden: list[torch.Tensor] | None = None
    adapter_pooled: list[torch.Tensor | None] | None = None


@torch.no_grad()
def validation_loss(unet, scheduler, vset: ValidationSet, *, prediction_type: str, seed: int,
                    dtype: torch.dtype, adapter: bool = False) -> float:
    device = next(unet.parameters()).device
    total_steps = scheduler.config.num_train_timesteps
    hidden_list = vset.adapter_hidden if adapter and vset.adapter_hidden is not None else vset.hidden
    pooled_list = vset.adapter_pooled if adapter and vset.adapter_pooled is not None else vset.pooled
    losses = []
    for i, latent in enumerate(vset.latents):
        gen = step_generator(seed, "validation", i)
        x = latent.unsqueeze(0).to(device, dtype)
        for t in VALIDATION_TIMESTEPS:
            noise = torch.randn(x.shape, generator=gen).to(device, dtype)
            ts = torch.tensor([t * total_steps // 1000], device=device, dtype=torch.long)
            pooled = pooled_list[i]
            loss = denoising_loss(
                unet, scheduler, latents=x, noise=noise, timesteps=ts,
                hidden=hidden_list[i].unsqueeze(0).to(device, dtype),
                pooled=None if pooled is None else pooled.unsqueeze(0).to(device, dtype),
                time_ids=None if vset.time_ids[i] is None else vset.time_ids[i].unsqueeze(0).to(device, dtype),
                prediction_type=prediction_type,
            )
            losses.append(float(loss))
    return sum(losses) / max(1, len(losses))


def base_and_adapter_loss(unet, scheduler, vset: ValidationSet, **kwargs) -> tuple[float, float]:
    was_training = unet.training
    unet.eval()
    try:
        set_lora_enabled(unet, False)
        base = validation_loss(unet, scheduler, vset, **kwargs)
    finally:
        set_lora_enabled(unet, True)
    adapter = validation_loss(unet, scheduler, vset, adapter=True, **kwargs)
    unet.train(was_training)
    return base, adapter
