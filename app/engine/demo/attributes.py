"""Read-out heads that teach the demo text encoder to say *which* colour is the shape's and which the background's.

Trained from scratch on the diffusion loss alone, the demo's narrow text encoder learns the background colour
well but blurs the shape colour into it (the UNet then paints the wrong colour on the shape). These linear heads
predict a caption's scene attributes from every text state at or after the end-of-text token (the states that have
seen the whole caption through CLIP's causal attention, and that the UNet's cross-attention mostly reads). Their
loss, added to the diffusion loss, keeps the attributes linearly separable in those states. The heads are a
training aid only: they are not part of the saved model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.engine.demo.scenes import COLOURS, SHAPES, SIZES, Scene

FIELDS: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "background": tuple(COLOURS),
    "shape": SHAPES,
    "size": tuple(SIZES),
}
IGNORE = -100  # label of captions without a scene (the empty caption used for classifier-free guidance)


def scene_labels(scene: Scene | None) -> list[int]:
    if scene is None:
        return [IGNORE] * len(FIELDS)
    return [values.index(getattr(scene, field)) for field, values in FIELDS.items()]


def whole_caption_mask(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """True at the first end-of-text token and every (padding) position after it."""
    is_eos = input_ids == eos_token_id
    first = is_eos.int().argmax(dim=1, keepdim=True)
    return torch.arange(input_ids.shape[1])[None, :] >= first


class AttributeHeads(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.heads = nn.ModuleDict({field: nn.Linear(width, len(values)) for field, values in FIELDS.items()})

    def loss(self, states: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over fields and masked positions; ``labels`` is (batch, len(FIELDS))."""
        picked = states[mask]  # (n_positions, width)
        rows = mask.nonzero()[:, 0]
        losses = [
            F.cross_entropy(head(picked), labels[rows, k], ignore_index=IGNORE)
            for k, head in enumerate(self.heads.values())
        ]
        return torch.stack(losses).nan_to_num(0.0).mean()

    @torch.no_grad()
    def accuracy(self, states: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Per field, the share of masked positions whose prediction is right (captions with labels only)."""
        picked, rows = states[mask], mask.nonzero()[:, 0]
        out = {}
        for k, (field, head) in enumerate(self.heads.items()):
            want = labels[rows, k]
            keep = want != IGNORE
            out[field] = float((head(picked[keep]).argmax(-1) == want[keep]).float().mean())
        return out
