"""AUTOMATIC1111's per-adapter ``<name>.json`` beside the file: where its LoRA card reads the activation text.

A1111 shows ``ss_tag_frequency`` tags in its metadata panel, but the words it inserts when a card is clicked
("activation text"), its description and its SD-version filter come from this sidecar, never from the
safetensors header. Export writes one from the header; import reads one found beside the source and fills
what the header lacks (a trigger phrase, a description).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.engine.adapters.info import AdapterInfo
from app.engine.atomic import atomic_write_text

# A1111's "sd version" choices for a LoRA card (SdVersion in extensions-builtin/Lora/network.py).
_SD_VERSION = {"sd1": "SD1", "sd2": "SD2", "sd2-v": "SD2", "sdxl": "SDXL"}


def sidecar_path(adapter: str | os.PathLike[str]) -> Path:
    return Path(adapter).with_suffix(".json")


def sidecar_for(info: AdapterInfo) -> dict[str, str]:
    """The sidecar A1111 writes from its "edit metadata" dialog, filled from our header.

    A demo-model adapter says "Unknown": A1111 would otherwise list it as SD1 (it calls every file with
    metadata SD1 unless ``ss_base_model_version`` starts with ``sdxl_`` or ``ss_v2`` is True)."""
    return {
        "description": info.description,
        "sd version": _SD_VERSION.get(info.family, "Unknown"),
        "activation text": info.trigger_phrase,
        "preferred weight": 0,
        "negative text": "",
        "notes": f"Exported from StyleShelf: {info.title}",
    }


def write_sidecar(adapter: str | os.PathLike[str], info: AdapterInfo) -> Path:
    path = sidecar_path(adapter)
    atomic_write_text(path, json.dumps(sidecar_for(info), indent=4, ensure_ascii=False) + "\n")
    return path


def read_sidecar(adapter: str | os.PathLike[str]) -> dict[str, str]:
    """The sidecar's text fields ({} when there is none or it is not an A1111 sidecar)."""
    path = sidecar_path(adapter)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v.strip() for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v.strip()}
