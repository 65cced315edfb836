"""The optimiser a run uses, by the name the config carries.

AdamW is what kohya_ss, OneTrainer and diffusers default to for LoRA. Adafactor (torch's own implementation)
keeps factored second moments instead of a full copy per weight, so its state is a fraction of AdamW's: the
memory-saver kohya users pick for large ranks or SDXL on small GPUs.
"""

from __future__ import annotations

from typing import Any

import torch

from app.engine.train.config import OPTIMIZERS


def make_optimizer(name: str, groups: list[dict[str, Any]], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if name == "adafactor":
        return torch.optim.Adafactor(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
