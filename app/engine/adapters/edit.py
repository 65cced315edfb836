"""Edit an adapter's user-facing metadata in place: atomic rewrite, tensor bytes copied verbatim.

So the tensor hash (and ``modelspec.hash_sha256``) stays the same, while the full-file hash (AutoV2)
changes, as it must: the file's bytes did change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine.adapters.info import AdapterInfo, read_adapter_info
from app.engine.adapters.writer import thumbnail_data_uri
from app.engine.author import stamp_edit
from app.engine.errors import AdapterError
from app.engine.safetensors_file import MAX_ADAPTER_HEADER_BYTES, read_header, rewrite_metadata

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

_UNSET = object()
_MAX_TEXT = 20_000  # a description longer than this is almost certainly a paste accident


def edit_metadata(
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    trigger_phrase: str | None = None,
    description: str | None = None,
    thumbnail: "Image | None | object" = _UNSET,
) -> AdapterInfo:
    """Change title / trigger phrase / description / thumbnail (``None`` thumbnail removes it)."""
    path = Path(path)
    header = read_header(path, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)
    read_adapter_info(path, with_hashes=False)  # refuse non-adapters before touching the file
    meta = dict(header.metadata)
    for key, value in (("modelspec.title", title), ("modelspec.trigger_phrase", trigger_phrase),
                       ("modelspec.description", description)):  # fmt: skip
        if value is None:
            continue
        if len(value) > _MAX_TEXT:
            raise AdapterError(f"{key.split('.')[-1].capitalize()} is too long ({len(value):,} characters).")
        meta[key] = value
    if title is not None and not title.strip():
        raise AdapterError("The title cannot be empty.")
    if thumbnail is not _UNSET:
        if thumbnail is None:
            meta.pop("modelspec.thumbnail", None)
        else:
            meta["modelspec.thumbnail"] = thumbnail_data_uri(thumbnail)  # type: ignore[arg-type]
    if not os.access(path, os.W_OK):
        raise AdapterError(f"{path.name} is read-only; copy it to your shelf to edit it.")
    stamp_edit(meta)  # when and by whom (app.engine.author)
    rewrite_metadata(path, meta, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)
    return read_adapter_info(path)
