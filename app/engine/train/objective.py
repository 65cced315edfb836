"""The denoising objective shared by training and validation: noise, target, UNet call, weighted loss.

``preserving_loss`` adds unconditional preservation: the adapter's prediction for the empty prompt (the
unconditional half of guidance) is pulled toward the base model's. The style then lives in the prompt side only,
so guidance amplifies it like any other part of the prompt instead of cancelling it (see TrainConfig).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
import torch.nn.functional as F


def step_generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator for one (seed, micro-batch) pair: a resumed run or another rank replays it exactly,
    with no RNG state to carry between steps."""
    digest = hashlib.sha256(":".join(map(str, (seed, *stream))).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def sdxl_time_ids(original_hw, crop_top_left, target_hw) -> torch.Tensor:
    """SDXL's micro-conditioning row: original size, crop offset, target size (all height, width)."""
    return torch.tensor([*original_hw, *crop_top_left, *target_hw], dtype=torch.float32)


def sdxl_time_ids_for(original_hw, crop, bucket_wh) -> torch.Tensor:
    """Time ids of a sample cut by ``crop`` (buckets.Crop) into a ``bucket_wh`` (width, height) picture."""
    return sdxl_time_ids(original_hw, (crop.top, crop.left), (bucket_wh[1], bucket_wh[0]))


def predict(unet, noisy, timesteps, hidden, pooled=None, time_ids=None) -> torch.Tensor:
    added = None
    if pooled is not None:
        added = {"text_embeds": pooled, "time_ids": time_ids}
    return unet(noisy, timesteps, encoder_hidden_states=hidden, added_cond_kwargs=added, return_dict=False)[0]


def target_for(scheduler, prediction_type: str, latents, noise, timesteps) -> torch.Tensor:
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def snr_weights(scheduler, timesteps, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-γ weights (Hang et al. 2023): cap each timestep's weight at γ / SNR."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    snr = alphas / (1.0 - alphas)
    capped = torch.clamp(snr, max=gamma)
    return capped / (snr + 1.0) if prediction_type == "v_prediction" else capped / snr


def denoising_loss(
    unet,
    scheduler,
    *,
    latents,
    noise,
    timesteps,
    hidden,
    pooled=None,
    time_ids=None,
    prediction_type: str,
    snr_gamma: float = 0.0,
    reduce: bool = True,
) -> torch.Tensor:
    noisy = scheduler.add_noise(latents, noise, timesteps)
    pred = predict(unet, noisy, timesteps, hidden, pooled, time_ids)
    target = target_for(scheduler, prediction_type, latents, noise, timesteps)
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma > 0:
        per_sample = per_sample * snr_weights(scheduler, timesteps, snr_gamma, prediction_type)
    return per_sample.mean() if reduce else per_sample


def preserving_loss(
    unet,
    scheduler,
    *,
    latents,
    noise,
    timesteps,
    hidden,
    empty_hidden,
    empty_hidden_base,
    pooled=None,
    empty_pooled=None,
    empty_pooled_base=None,
    time_ids=None,
    prediction_type: str,
    snr_gamma: float = 0.0,
    weight: float,
    adapter_enabled: Callable[[bool], None],
) -> torch.Tensor:
    """The denoising loss plus ``weight`` × the squared distance between the adapter's and the base model's
    prediction for the same noisy latents under the empty prompt.

    The reference runs with the adapter switched off (``adapter_enabled(False)``), without gradients; the
    captioned and empty-prompt predictions share one UNet call (one forward pass with gradients, which
    distributed training needs). ``empty_hidden_base`` is the empty prompt through the base text encoders (the
    same tensor as ``empty_hidden`` unless the text encoders are being trained).
    """
    noisy = scheduler.add_noise(latents, noise, timesteps)
    with torch.no_grad():
        adapter_enabled(False)
        try:
            reference = predict(unet, noisy, timesteps, empty_hidden_base, empty_pooled_base, time_ids)
        finally:
            adapter_enabled(True)
    n = len(latents)
    both = predict(
        unet,
        torch.cat([noisy, noisy]),
        torch.cat([timesteps, timesteps]),
        torch.cat([hidden, empty_hidden]),
        None if pooled is None else torch.cat([pooled, empty_pooled]),
        None if time_ids is None else torch.cat([time_ids, time_ids]),
    )
    target = target_for(scheduler, prediction_type, latents, noise, timesteps)
    fit = F.mse_loss(both[:n].float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    drift = F.mse_loss(both[n:].float(), reference.float(), reduction="none").mean(dim=(1, 2, 3))
    per_sample = fit + weight * drift
    if snr_gamma > 0:
        per_sample = per_sample * snr_weights(scheduler, timesteps, snr_gamma, prediction_type)
    return per_sample.mean()
