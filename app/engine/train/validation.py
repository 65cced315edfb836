"""Did it learn? Denoising loss of the base vs the adapter on fixed images, noise and timesteps.

On a style set, pixels from a briefly trained adapter can look unchanged while the loss has clearly
dropped; the same images, noise and timesteps for both numbers make the comparison fair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from app.engine.train.lora import set_lora_enabled
from app.engine.train.objective import denoising_loss, sdxl_time_ids_for, step_generator

# Spread over the schedule (out of 1000); the same for every run so numbers compare across runs.
VALIDATION_TIMESTEPS = (100, 300, 500, 700, 900)


@dataclass
class ValidationSet:
    latents: list[torch.Tensor]  # (C, h, w) each
    hidden: list[torch.Tensor]  # (77, D) each
    pooled: list[torch.Tensor | None]
    time_ids: list[torch.Tensor | None]
    held_out: bool  # True: images never trained on
    token_ids: list[list[torch.Tensor]] = field(default_factory=list)  # per image, per tokenizer: (1, 77)
    # Conditioning through the trained text-encoder LoRA (when it is trained); None = same as ``hidden``.
    adapter_hidden: list[torch.Tensor] | None = None
    adapter_pooled: list[torch.Tensor | None] | None = None


@torch.no_grad()
def build_validation_set(base, items, cfg, *, held_out: bool, device) -> ValidationSet:
    """Latents and (base) text conditioning of the validation images, through the same disk cache."""
    from app.engine.train.cache import plan_samples, prepare

    samples, captions = plan_samples(
        items, resolution=cfg.resolution, step=cfg.bucket_step, max_upscale=cfg.max_upscale, flip=False
    )
    data = prepare(
        base,
        items,
        samples,
        captions,
        cache_latents=True,
        cache_text=True,
        background=cfg.background,
        max_pixels=cfg.max_image_pixels,
        device=device,
    )
    return ValidationSet(
        latents=list(data.latents),
        hidden=[data.text_hidden[s.caption] for s in samples],
        pooled=[None if data.text_pooled is None else data.text_pooled[s.caption] for s in samples],
        time_ids=[sdxl_time_ids_for(s.original_size, s.crop, s.bucket) if base.is_sdxl else None for s in samples],
        held_out=held_out,
        token_ids=[[ids[s.caption : s.caption + 1] for ids in data.token_ids] for s in samples],
    )


@torch.no_grad()
def adapter_conditioning(base, vset: ValidationSet):
    """Text conditioning of the validation captions through the text encoders with their trained LoRA."""
    from app.engine.train.model import encode_tokens

    hidden, pooled = [], []
    for ids in vset.token_ids:
        h, p = encode_tokens(base, ids)
        hidden.append(h[0].float().cpu())
        pooled.append(None if p is None else p[0].float().cpu())
    return hidden, pooled


@torch.no_grad()
def validation_loss(
    unet, scheduler, vset: ValidationSet, *, prediction_type: str, seed: int, dtype: torch.dtype, adapter: bool = False
) -> float:
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
                unet,
                scheduler,
                latents=x,
                noise=noise,
                timesteps=ts,
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
