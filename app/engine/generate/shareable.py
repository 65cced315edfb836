"""What a generated PNG's record may say about files: their names and hashes, never a path of this machine.

A PNG is shared (posted, sent to a teammate); a path names the user's folders (``/home/ana/clients/…``) and is
useless on the next machine anyway. Readers find adapters by tensor hash on their shelf and input pictures by
hash in their inputs folder, beside the PNG and in recently used folders (``input_meta``, ``recent_inputs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.errors import UserError

PICTURE_PATH_KEYS = ("init_image", "mask_image")
_PER_RUN = ("stack", "out_dir", "file_stem")  # where this run wrote, not what it made


def file_name(path: str) -> str:
    return Path(path).name if path else ""


def shareable_settings(settings: dict[str, Any], *, drop: tuple[str, ...] = _PER_RUN) -> dict[str, Any]:
    """A ``GenerateConfig.to_dict()`` for a shared file: picture paths cut to their file names, output places gone."""
    out = {k: v for k, v in settings.items() if k not in drop}
    for key in PICTURE_PATH_KEYS:
        if key in out:
            out[key] = file_name(str(out[key] or ""))
    return out


def shareable_stack(stack: list[Any]) -> list[dict[str, Any]]:
    """Every entry (disabled ones too) by file name, title and hashes, so a reader restores the whole stack."""
    from app.engine.generate.identity import adapter_identity

    out = []
    for entry in stack:
        item = entry.to_dict()
        item["file"] = file_name(item.pop("path", ""))
        try:
            ident = adapter_identity(entry.path) if entry.path else None
        except UserError:
            ident = None  # a disabled entry whose file is gone: keep what the stack knew
        if ident is not None:
            item.update(sha256=ident.tensor_sha256, autov2=ident.autov2, name=entry.name or ident.title)
        out.append(item)
    return out
