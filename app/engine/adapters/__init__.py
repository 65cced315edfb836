"""Adapter files: write our kohya-layout LoRA files, read every common layout, inspect, refuse, edit.

Public API (the training, generation and shelf code use only these names):

- ``save_adapter(path, *, unet, text_encoder=None, text_encoder_2=None, rank, alpha, family, title, …)``
"""

from app.engine.adapters.writer import save_adapter, thumbnail_data_uri

__all__ = ["save_adapter", "thumbnail_data_uri"]
