"""Read-out heads that teach the demo text encoder to say *which* colour is the shape's and which the background's.

Trained from scratch on the diffusion loss alone, the demo's narrow text encoder learns the background colour
well but blurs the shape colour into it (the UNet then paints the wrong colour on the shape). These linear heads
predict a caption's scene attributes from every text state at or after the end-of-text token (the states that have
seen the whole caption through CLIP's causal attention, and that the UNet's cross-attention mostly reads). Their
loss, added to the diffusion loss, keeps the attributes linearly separable in those states. The heads are a
training aid only: they are not part of the saved model. Also here: the table of tokenised training captions
(some with random words in front, as users write trigger words there) and the short text pre-training stage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tools.demo.scenes import COLOURS, SHAPES, SIZES, Scene

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


@dataclass
class CaptionTable:
    """Every distinct caption (plus the empty one, for classifier-free guidance) tokenised once, with its labels."""

    ids: torch.Tensor  # (n_captions, 77) token ids
    labels: torch.Tensor  # (n_captions, len(attributes.FIELDS)) scene attributes, IGNORE for the empty caption
    mask: torch.Tensor  # (n_captions, 77) the positions that have seen the whole caption
    of_image: torch.Tensor  # (n_images,) caption row of each training image
    empty: int

    @classmethod
    def build(cls, tokenizer, scenes: list[Scene], *, seed: int, prefixed_share: float) -> "CaptionTable":
        # Users put trigger words and styles in front ("striped, a red circle on …"). A share of the captions
        # starts with random whole words, so the model learns to draw the scene whatever precedes it.
        rng = random.Random(seed)
        words = prefix_words(tokenizer)
        texts = [
            f"{' '.join(rng.sample(words, rng.randint(1, 2)))}, {s.caption()}"
            if rng.random() < prefixed_share
            else s.caption()
            for s in scenes
        ]
        scene_of = dict(zip(texts, scenes))
        vocab = sorted(scene_of) + [""]
        ids = tokenizer(vocab, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        labels = torch.tensor([scene_labels(scene_of.get(c)) for c in vocab])
        row = {c: i for i, c in enumerate(vocab)}
        return cls(
            ids, labels, whole_caption_mask(ids, tokenizer.eos_token_id), torch.tensor([row[t] for t in texts]), row[""]
        )


def prefix_words(tokenizer) -> list[str]:
    """Whole lower-case words of the CLIP vocabulary (4–10 letters), minus the scene words: the prefix pool."""
    scene_words = {*COLOURS, *SHAPES, *SIZES, "background"}
    return sorted(
        w[:-4]
        for w in tokenizer.get_vocab()
        if w.endswith("</w>")
        and w[:-4].isalpha()
        and w[:-4].islower()
        and 4 <= len(w) - 4 <= 10
        and w[:-4] not in scene_words
    )


def pretrain_text(text_encoder, heads: AttributeHeads, table: CaptionTable, *, steps: int, seed: int, log) -> None:
    """Teach the text encoder the caption's attributes before the UNet starts reading it (seconds, not minutes)."""
    if steps <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(list(text_encoder.parameters()) + list(heads.parameters()), lr=1e-3, weight_decay=1e-2)
    text_encoder.train()
    labelled = torch.arange(len(table.ids))[table.labels[:, 0] != IGNORE]
    for step in range(steps):
        pick = labelled[torch.randint(0, len(labelled), (64,), generator=gen)]
        loss = heads.loss(text_encoder(table.ids[pick])[0], table.mask[pick], table.labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"text step {step + 1}/{steps} attribute loss {loss.item():.4f}")
    text_encoder.eval()
    with torch.no_grad():
        acc = heads.accuracy(text_encoder(table.ids[labelled])[0], table.mask[labelled], table.labels[labelled])
    log("text read-out accuracy: " + ", ".join(f"{k} {v:.0%}" for k, v in acc.items()))
