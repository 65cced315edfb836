"""Text-encoder files both transformers 4.x and 5.x read: CLIP keys under ``text_model.``.

transformers 5 saves ``CLIPTextModel`` without the ``text_model.`` level (``encoder.layers.0…``); transformers
4.x finds none of its keys in such a file and silently keeps random weights. Both versions load the prefixed
names (5.x maps them back), so the folders we write use them. Tensors are copied unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.engine.atomic import atomic_path, atomic_write_text
from app.engine.errors import ModelLoadError
from app.engine.safetensors_file import read_header

PREFIX = "text_model."
_TOP_LEVEL = ("text_model.", "text_projection", "logit_scale")


def needs_prefix(key: str) -> bool:
    return not key.startswith(_TOP_LEVEL)


def prefix_text_encoder_keys(folder: str | os.PathLike[str]) -> list[Path]:
    """Rewrite ``text_encoder*/…safetensors`` under a diffusers folder with ``text_model.`` keys; return the
    files changed. A file already in that layout is left as it is."""
    from safetensors.torch import load_file, save_file

    changed = []
    for sub in ("text_encoder", "text_encoder_2"):
        for path in sorted((Path(folder) / sub).glob("*.safetensors")):
            header = read_header(path, error=ModelLoadError, strict=False)
            if not any(needs_prefix(k) for k in header.tensors):
                continue
            tensors = {(PREFIX + k if needs_prefix(k) else k): v for k, v in load_file(str(path)).items()}
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp), metadata=header.metadata or {"format": "pt"})
            changed.append(path)
        index = Path(folder) / sub / "model.safetensors.index.json"
        if index.is_file():  # a sharded encoder: its weight map names the keys too
            data = json.loads(index.read_text(encoding="utf-8"))
            data["weight_map"] = {
                (PREFIX + k if needs_prefix(k) else k): v for k, v in data.get("weight_map", {}).items()
            }
            atomic_write_text(index, json.dumps(data, indent=2) + "\n")
    return changed
