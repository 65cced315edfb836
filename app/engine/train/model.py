"""The base model as the trainer sees it: components, family, and the text encoding each family uses."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class TrainingBase:
    pipe: Any
    family: str  # sd1 | sd2 | sd2-v | sdxl
    path: Path

    @property
    def unet(self):
        return self.pipe.unet

    @property
    def vae(self):
        return self.pipe.vae

    @property
    def text_encoders(self) -> list:
        encoders = [self.pipe.text_encoder]
        if self.is_sdxl:
            encoders.append(self.pipe.text_encoder_2)
        return encoders

    @property
    def tokenizers(self) -> list:
        tokenizers = [self.pipe.tokenizer]
        if self.is_sdxl:
            tokenizers.append(self.pipe.tokenizer_2)
        return tokenizers

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    @property
    def noise_scheduler(self):
        return self.pipe.scheduler

    def fingerprint(self, part: str) -> str:
        """A cheap identity of one component (config + a sample of its weights) for cache keys."""
        module = {"vae": [self.vae], "text": self.text_encoders}[part]
        digest = hashlib.sha256(part.encode())
        for m in module:
            config = getattr(m, "config", None)
            config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
            digest.update(json.dumps(config_dict, sort_keys=True, default=str).encode())
            # Sampling a few parameter tensors is enough to tell two different checkpoints apart.
            params = [p for name, p in m.named_parameters() if "lora_" not in name]  # the base's own weights
            for p in params[:: max(1, len(params) // 8)]:
                digest.update(p.detach().float().cpu().contiguous().numpy().tobytes()[:4096])
        return digest.hexdigest()[:32]


def load_training_base(
    path: str | Path, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> TrainingBase:
    """The shared loader (diffusers folders and single files, family detection, offline configs)."""
    from app.engine.models.loading import load_base

    base = load_base(Path(path).expanduser(), device=str(device), dtype=dtype)
    if int(base.pipe.unet.config.in_channels) != 4:
        from app.engine.errors import ModelLoadError

        raise ModelLoadError(
            f"{Path(path).name} is an inpainting model: train on its normal (text-to-image) base; "
            "the adapter then works on the inpainting model too."
        )
    return TrainingBase(base.pipe, str(base.family), Path(path))


def tokenize(base: TrainingBase, captions: list[str]) -> list[torch.Tensor]:
    """Token ids for each tokenizer (one for SD1/2, two for SDXL), padded to the model's 77."""
    out = []
    for tok in base.tokenizers:
        ids = tok(
            captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        out.append(ids)
    return out


def encode_tokens(base: TrainingBase, ids: list[torch.Tensor], encoders: list | None = None):
    """Text conditioning the way diffusers' pipelines build it at inference.

    SD1/SD2: the last hidden state. SDXL: the penultimate hidden states of both encoders, concatenated,
    plus the second encoder's projected pooled output. Returns (hidden, pooled or None).
    """
    encoders = encoders or base.text_encoders
    device = next(encoders[0].parameters()).device
    if not base.is_sdxl:
        return encoders[0](ids[0].to(device))[0], None
    hidden = []
    pooled = None
    for enc, tok_ids in zip(encoders, ids):
        out = enc(tok_ids.to(device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]  # the last encoder (with projection) gives text_embeds
    return torch.cat(hidden, dim=-1), pooled
