"""A small valid kohya adapter file (tiny-SD1.5 attention shapes), different per seed, same size for any seed."""

from __future__ import annotations

from pathlib import Path

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0"


def write_tiny_lora(path: Path, *, seed: int, rank: int = 2) -> Path:
    import torch

    from app.engine.adapters import save_adapter

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for module, fan_in in (("attn2.to_k", 32), ("attn2.to_v", 32), ("attn1.to_q", 64)):
        state[f"{ATTN}.{module}.lora_A.weight"] = torch.randn(rank, fan_in, generator=gen)
        state[f"{ATTN}.{module}.lora_B.weight"] = torch.randn(64, rank, generator=gen) * 0.1
    return save_adapter(path, unet=state, rank=rank, alpha=rank, family="sd1", title="tiny")
