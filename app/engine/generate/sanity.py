"""Stop a generation that has broken down, and say which styles were on, instead of saving a black PNG.

An adapter with an absurd scale (alpha 3e38), or several strong ones stacked, pushes the UNet's
activations past float range: the latents turn NaN/Inf (or explode, or collapse to one value) within a
step or two, and diffusers decodes that to an all-black or flat image without complaint. Checking the
latents at every step costs one reduction over a small tensor; the decoded image is checked once more
for a single flat colour, the other face of the same failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.errors import UserError

# Scheduler latents start at init_noise_sigma (≈ 14.6 for Karras/Euler) × N(0, 1): |x| stays well below 100.
# A thousand times that is not a picture any more.
LATENT_LIMIT = 1e5


@dataclass(frozen=True)
class StackWatch:
    """The active styles of one generation, to name in the refusal (``"Ink (0.8)"``)."""

    styles: tuple[str, ...]

    @classmethod
    def of(cls, identities: list[Any], entries: list[Any]) -> "StackWatch":
        return cls(tuple(f"{_label(ident)} ({float(e.weight):g})" for ident, e in zip(identities, entries)))

    def check_latents(self, latents: Any, step: int) -> None:
        """Raise UserError when the latents after ``step`` hold NaN/Inf, explode or collapse to one value."""
        import torch

        if latents is None or not isinstance(latents, torch.Tensor) or latents.numel() == 0:
            return
        values = latents.detach()
        if not bool(torch.isfinite(values).all()):
            raise self._broken(f"NaN/Inf values appeared at step {step}")
        peak = float(values.abs().max())
        if peak > LATENT_LIMIT:
            raise self._broken(f"its values exploded (to {peak:.3g}) at step {step}")
        if values.numel() > 1 and float(values.float().std()) == 0.0:
            raise self._broken(f"it collapsed to a single value at step {step}")

    def check_image(self, image: Any) -> None:
        """Raise UserError for a decoded image of one flat colour while styles are on (the collapse's face)."""
        import numpy as np

        if not self.styles or image is None:
            return  # a flat picture from the base alone is unusual but not a broken adapter
        pixels = np.asarray(image)
        if pixels.size and int(pixels.max()) == int(pixels.min()):
            raise self._broken(f"it decoded to a single flat colour ({int(pixels.max())})")

    def _broken(self, what: str) -> UserError:
        if not self.styles:
            return UserError(
                f"The image broke down: {what}, with no style on; nothing was saved.",
                hint="The base model itself misbehaves here: try another sampler, fewer steps or float32.",
            )
        names = ", ".join(self.styles)
        return UserError(
            f"The image broke down: {what}, with {names} on; nothing was saved.",
            hint=(
                "One of these styles is broken or far too strong: lower its strength or turn it off "
                "(`styleshelf shelf inspect` judges its update size)."
            ),
        )


def _label(ident: Any) -> str:
    """The style's title, and its file name when that differs (two files can share a title)."""
    name = Path(ident.path).name
    return ident.title if ident.title == Path(name).stem else f"{ident.title} [{name}]"
