"""Partial-strength training: teach the adapter what a shelf weight below 1 should look like.

Why: a plain LoRA learns only the full-strength picture; how much of it shows at weight 0.5 is left to chance, and
on the bundled styles it was 2-16 % of the way to the style (the sampler and guidance wash a weak change out). Here
a share of the steps runs the adapter at a random weight ``w`` on training pictures blended ``w`` of the way from
the base model's own redraw of them (the plain end) to the pictures themselves, so at every weight the adapter
learns to keep and draw that much of the look. Blending the predictions instead (same inputs, target between the
base model's prediction and the noise) was tried first and moved weight 0.5 from 2 % to 4 % only: a weight-0.5
generation's inputs carry half the look, and the adapter must have seen such inputs.
"""

from __future__ import annotations

import torch

from app.engine.train.lora import set_lora_enabled
from app.engine.train.objective import denoising_loss, predict

# Timesteps (of 1000) the plain end of the blend is restored from. Measured on the bundled styles (weight 0.5's
# share of the way to the style set, bench/style_strength.py): from 500-800 the base model redraws the scene
# without the look and pastel reached 9-13 %, outlines 28 %; from 200-500 it keeps a trace of a colour style (a
# pastel set's redraw is a third of the way to pastel), which lifts pastel to 50 % and outlines to 38 %, and stripes
# stay where they were (26 %). Lower still, the redraw is the training picture itself and teaches nothing.
PLAIN_FROM = (200, 500)


def set_lora_strength(module, strength: float) -> None:
    """Run every LoRA/LyCORIS layer of ``module`` at ``strength`` × its trained scale (1: as trained)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for layer in module.modules():
        if isinstance(layer, BaseTunerLayer) and hasattr(layer, "unscale_layer"):
            layer.unscale_layer()  # back to alpha / rank first: scale_layer multiplies the current scale
            layer.scale_layer(strength)


def plain_estimate(unet, scheduler, latents, noise, timesteps, hidden, pooled, time_ids, prediction_type: str):
    """The base model's clean-picture estimate of ``latents`` after noising them to ``timesteps`` (adapter off, no
    gradients). From a noise level that drowns fine detail the base model restores the picture the way it draws
    pictures itself: the same scene without the style (the "weight 0" end of the blend)."""
    with torch.no_grad():
        set_lora_enabled(unet, False)
        try:
            noisy = scheduler.add_noise(latents, noise, timesteps)
            pred = predict(unet, noisy, timesteps, hidden, pooled, time_ids).float()
        finally:
            set_lora_enabled(unet, True)
    alphas = scheduler.alphas_cumprod.to(latents.device)[timesteps].float().view(-1, 1, 1, 1)
    a, s = alphas.sqrt(), (1.0 - alphas).sqrt()
    if prediction_type == "v_prediction":
        return (a * noisy.float() - s * pred).to(latents.dtype)
    return ((noisy.float() - s * pred) / a).to(latents.dtype)


def partial_strength_loss(
    unet,
    scheduler,
    gen: torch.Generator,
    *,
    latents,
    noise,
    timesteps,
    hidden,
    pooled=None,
    time_ids=None,
    prediction_type: str,
    snr_gamma: float = 0.0,
) -> torch.Tensor:
    """The denoising loss of the adapter run at a random strength w on pictures blended w of the way from their
    ``plain_estimate`` to the training pictures: at weight w the adapter learns to draw w of the look, from inputs
    that carry w of it, as a weight-w generation does. w, the plain estimate's noise level and its noise come
    from ``gen`` (the micro-batch's generator), so resumed runs replay them."""
    strength = torch.rand((), generator=gen).item()
    plain_t = torch.randint(PLAIN_FROM[0], PLAIN_FROM[1], (len(latents),), generator=gen).to(latents.device)
    plain_noise = torch.randn(latents.shape, generator=gen).to(latents.device, latents.dtype)
    plain = plain_estimate(unet, scheduler, latents, plain_noise, plain_t, hidden, pooled, time_ids, prediction_type)
    blended = strength * latents + (1.0 - strength) * plain
    set_lora_strength(unet, strength)
    try:
        return denoising_loss(
            unet,
            scheduler,
            latents=blended,
            noise=noise,
            timesteps=timesteps,
            hidden=hidden,
            pooled=pooled,
            time_ids=time_ids,
            prediction_type=prediction_type,
            snr_gamma=snr_gamma,
        )
    finally:
        set_lora_strength(unet, 1.0)
