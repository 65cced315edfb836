"""LoRA style training: settings, dataset scanning, and the training run.

``TrainConfig``, ``TRAIN_PRESETS`` and ``scan_dataset`` import no torch (the GUI uses them at start-up);
``train`` and ``TrainResult`` load the heavy modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.engine.train.config import TRAIN_PRESETS, TrainConfig, config_from_preset, load_toml
from app.engine.train.dataset import DatasetItem, DatasetReport, SkippedItem, scan_dataset

if TYPE_CHECKING:  # pragma: no cover
    from app.engine.train.loop import TrainResult, train

__all__ = [
    "TRAIN_PRESETS",
    "TrainConfig",
    "config_from_preset",
    "load_toml",
    "DatasetItem",
    "DatasetReport",
    "SkippedItem",
    "scan_dataset",
    "train",
    "TrainResult",
]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from app.engine.train import loop

        return getattr(loop, name)
    raise AttributeError(name)
