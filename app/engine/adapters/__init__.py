"""Adapter files: write our kohya-layout LoRA files, read every common layout, inspect, refuse, edit.

Public API (training, generation and the shelf use only these names):

- ``save_adapter(path, *, unet, text_encoder=None, text_encoder_2=None, rank, alpha, family, title, …)``
- ``read_adapter_info(path) -> AdapterInfo`` — header only: title, family, rank, layout, thumbnail, hashes
- ``load_into_pipeline(pipe, path, adapter_name) -> LoadReport`` — any layout, matched/unmatched counts
- ``read_lora_modules(path) -> (AdapterInfo, {module: LoraModule})`` — validated tensors, canonical names
- ``edit_metadata(path, *, title, trigger_phrase, description, thumbnail) -> AdapterInfo``
"""

from app.engine.adapters.edit import edit_metadata
from app.engine.adapters.info import UNKNOWN, AdapterInfo, read_adapter_info, tag_frequency
from app.engine.adapters.loader import (
    LoadReport,
    LoraModule,
    load_into_pipeline,
    loaded_adapter_names,
    pipeline_family,
    read_lora_modules,
    unload_adapter,
)
from app.engine.adapters.writer import save_adapter, thumbnail_data_uri
from app.engine.errors import AdapterError

__all__ = [
    "UNKNOWN",
    "AdapterError",
    "AdapterInfo",
    "LoadReport",
    "LoraModule",
    "edit_metadata",
    "load_into_pipeline",
    "loaded_adapter_names",
    "pipeline_family",
    "read_adapter_info",
    "read_lora_modules",
    "save_adapter",
    "tag_frequency",
    "thumbnail_data_uri",
    "unload_adapter",
]
