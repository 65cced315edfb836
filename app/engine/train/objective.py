"""The denoising objective shared by training and validation: noise, target, UNet call, weighted loss."""

from __future__ import annotations

import hashlib

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
