"""Adapter-side safetensors helpers: refuse pickles with the adapter wording, serialise and rewrite.

The container parsing itself lives in ``app.engine.safetensors_file`` (shared with base models).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from app.engine.atomic import atomic_path
from app.engine.errors import AdapterError
from app.engine.safetensors_file import (  # noqa: F401  (re-exported for the adapter modules)
    Header,
    TensorSpec,
    data_sha256,
    encode_header,
    file_sha256,
    header_from_bytes,
    is_pickle_path,
    parse_header_bytes,
    read_whole_file,
)
from app.engine.safetensors_file import read_header as _read_header

# The largest real LoRA headers are a few hundred KB (thousands of tensors, a 256 px thumbnail, kohya's
# tag counts); a header this big is junk, and parsing it on every shelf scan would cost seconds.
MAX_ADAPTER_HEADER_BYTES = 8 * 1024 * 1024


def refuse_pickle(path: Path) -> None:
    if is_pickle_path(path):
        raise AdapterError(
            f"{path.name}: pickled checkpoints ({path.suffix}) can run code when opened and are refused.",
            hint="Ask for a .safetensors version of this adapter.",
        )


def read_header(path: str | os.PathLike[str]) -> Header:
    """Parse and validate the header of ``path`` (complete files only) without reading tensor data."""
    path = Path(path)
    refuse_pickle(path)
    return _read_header(path, error=AdapterError, strict=True, max_header_bytes=MAX_ADAPTER_HEADER_BYTES)


def read_file(path: str | os.PathLike[str]) -> tuple[Header, bytes, os.stat_result]:
    """The whole adapter file in memory (never memory-mapped: see ``read_whole_file``) with its header."""
    path = Path(path)
    refuse_pickle(path)
    blob, st = read_whole_file(path, error=AdapterError)
    return header_from_bytes(blob, path, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES), blob, st


def serialize(tensors: dict) -> tuple[dict[str, TensorSpec], bytes, str]:
    """Serialise torch tensors to (tensor header entries, data section bytes, sha256 of the data section).

    The caller adds metadata with ``encode_header(metadata, specs) + data``: the data section does not
    depend on the metadata, so the tensor hash can be stored in the very header it describes.
    """
    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in tensors.items()})
    n = int.from_bytes(blob[:8], "little")
    data = blob[8 + n :]
    header = parse_header_bytes(blob[8 : 8 + n], Path("<new>"), data_offset=8 + n, file_size=len(blob))
    return header.tensors, data, hashlib.sha256(data).hexdigest()


def write_atomic(target: str | os.PathLike[str], blob: bytes) -> Path:
    target = Path(target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(blob)
    return target


def rewrite_metadata(path: str | os.PathLike[str], metadata: dict[str, str]) -> None:
    """Replace the metadata of ``path`` atomically; tensor entries and bytes are copied unchanged."""
    path = Path(path)
    header = read_header(path)
    with atomic_path(path) as tmp:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(encode_header(metadata, header.tensors))
            src.seek(header.data_offset)
            shutil.copyfileobj(src, dst, 1 << 20)
