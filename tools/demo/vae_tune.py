"""Fine-tune the demo autoencoder so pastel colours survive a round trip, without moving the UNet's latent space.

The first autoencoder stage saw mostly saturated demo colours. It put pastel green almost on top of pastel red
(both decoded as a pinkish grey), so the pastel style could not be drawn in green whatever its adapter learnt, and
tuning the decoder alone cannot separate two colours the encoder has merged. This stage trains encoder and decoder
together on plain, pastel, striped and outlined scenes plus flat pastel swatches, and adds an *anchor* loss: the
new encoder's latents of plain scenes must stay where the old encoder put them (measured in units of their
spread). The UNet and text encoder were trained on those latents, so they keep working unchanged.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tools.demo.scenes import COLOURS, STYLES, image_to_tensor_array, random_scene, render

PASTEL_MIXES = (0.35, 0.55, 0.7)  # the style set draws 0.55; either side so nearby tints work too


def _mix_white(rgb: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(round(c + (255 - c) * amount)) for c in rgb)  # type: ignore[return-value]


def pastel_swatches(size: int = 64) -> np.ndarray:
    """Flat pictures of every demo colour mixed toward white (CHW in [-1, 1]), one per colour and mix."""
    from PIL import Image

    return np.stack(
        [
            image_to_tensor_array(Image.new("RGB", (size, size), _mix_white(rgb, mix)))
            for rgb in COLOURS.values()
            for mix in PASTEL_MIXES
        ]
    )


@torch.no_grad()
def round_trip(vae, x: torch.Tensor) -> torch.Tensor:
    return vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)


@torch.no_grad()
def pastel_swatch_error(vae) -> float:
    """Mean absolute error of a round trip through ``vae`` on the pastel swatches, in 0–255 levels."""
    x = torch.from_numpy(pastel_swatches())
    return float((round_trip(vae, x) - x).abs().mean() * 127.5)


def _tuning_image(rng: random.Random) -> np.ndarray:
    """A styled scene (any of the three looks, varied) or a flat pastel swatch."""
    from PIL import Image

    if rng.random() < 0.3:
        rgb = _mix_white(tuple(rng.randrange(256) for _ in range(3)), rng.uniform(0.2, 0.8))
        return image_to_tensor_array(Image.new("RGB", (64, 64), rgb))
    scene = random_scene(rng, jitter=0.2)
    style = rng.choice(STYLES + ("pastel",))  # pastel twice: it is the look the old encoder lost
    kw: dict = {}
    if style == "stripes":
        kw.update(stripe_period=rng.uniform(10, 22), stripe_angle=rng.choice((45.0, rng.uniform(0, 180))))
    elif style == "outline":
        kw.update(outline_px=rng.uniform(2, 5))
    else:
        kw.update(pastel=rng.uniform(0.3, 0.75))
    return image_to_tensor_array(render(scene, style=style, **kw))


def _plain_image(rng: random.Random) -> np.ndarray:
    return image_to_tensor_array(render(random_scene(rng, jitter=0.2)))


def tune_vae(
    vae,
    *,
    steps: int,
    batch: int = 8,
    lr: float = 1e-3,
    anchor: float = 1.0,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train ``vae`` in place for ``steps``; half of each batch is plain scenes anchored to the old latents.

    Returns the figures the build records: pastel swatch error before/after and how far plain latents moved
    (mean squared distance over the latents' variance; 0.01 is 1 % of their spread).
    """
    before = pastel_swatch_error(vae)
    old = copy.deepcopy(vae).eval().requires_grad_(False)
    rng = random.Random(seed)
    plain_probe = torch.from_numpy(np.stack([_plain_image(rng) for _ in range(64)]))
    with torch.no_grad():
        spread = float(old.encode(plain_probe).latent_dist.mode().var())
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, min(30, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))
    )
    vae.train()
    half = max(1, batch // 2)
    for step in range(steps):
        plain = torch.from_numpy(np.stack([_plain_image(rng) for _ in range(half)]))
        styled = torch.from_numpy(np.stack([_tuning_image(rng) for _ in range(batch - half)]))
        x = torch.cat([plain, styled])
        z = vae.encode(x).latent_dist.mode()
        rec = vae.decode(z).sample
        with torch.no_grad():
            z_old = old.encode(plain).latent_dist.mode()
        drift = F.mse_loss(z[:half], z_old) / spread
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + anchor * drift
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"vae tune step {step + 1}/{steps} loss {loss.item():.4f} (latent drift {drift.item():.4f})")
    vae.eval()
    with torch.no_grad():
        moved = float(
            F.mse_loss(vae.encode(plain_probe).latent_dist.mode(), old.encode(plain_probe).latent_dist.mode())
        )
    return dict(
        pastel_swatch_error_before_255=round(before, 2),
        pastel_swatch_error_255=round(pastel_swatch_error(vae), 2),
        plain_latent_drift=round(moved / spread, 4),
    )
