"""Read a .safetensors file's header without touching its tensor data, and refuse pickles.

A safetensors file is: 8 bytes (little-endian u64) header length N, N bytes of JSON naming every tensor
with its dtype, shape and byte range in the data block, then the data block. Reading the header costs a
few kilobytes even for a 7 GB checkpoint, so family detection and "is this file complete?" are instant.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.errors import ModelLoadError

# Formats that are Python pickles: loading one runs whatever code its author put in it.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")

# The safetensors format caps the header at 100 MB; anything larger is not a real header.
_MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # byte offsets inside the data block
    end: int


@dataclass
class SafetensorsHeader:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0  # 8 + header length
    file_size: int = 0

    @property
    def data_size(self) -> int:
        return max((t.end for t in self.tensors.values()), default=0)

    @property
    def is_complete(self) -> bool:
        return self.file_size >= self.data_start + self.data_size

    def shape(self, key: str) -> tuple[int, ...] | None:
        info = self.tensors.get(key)
        return info.shape if info else None


def refuse_pickle(path: Path) -> None:
    """Raise for a pickle-format checkpoint: we never unpickle a file a user was sent."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name} is a pickle-format checkpoint ({path.suffix}); StyleShelf never opens pickles "
            "because they can run code.",
            hint="Convert it to .safetensors with a tool you trust, or download the .safetensors release.",
        )


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Parse the header of ``path``; a missing, empty or corrupt file raises ModelLoadError."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a .safetensors file.")
    refuse_pickle(path)
    size = path.stat().st_size
    name = path.name
    if size < 8:
        raise ModelLoadError(f"{name} is empty or truncated ({size} bytes): not a safetensors file.")
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len == 0 or header_len > _MAX_HEADER_BYTES:
            raise ModelLoadError(f"{name} is not a safetensors file (its first bytes are not a safetensors header).")
        if 8 + header_len > size:
            raise ModelLoadError(
                f"{name} is truncated: the file ends inside its header ({size} of at least {8 + header_len} bytes).",
                hint="Download or copy it again.",
            )
        raw = fh.read(header_len)
    try:
        parsed = json.loads(raw.decode("utf-8"))
        if not isinstance(parsed, dict):
            raise ValueError("header is not a JSON object")
        metadata = parsed.pop("__metadata__", None) or {}
        tensors = {
            key: TensorInfo(str(v["dtype"]), tuple(int(d) for d in v["shape"]), *map(int, v["data_offsets"]))
            for key, v in parsed.items()
        }
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{name} is corrupt: its safetensors header cannot be read ({err}).") from err
    if not isinstance(metadata, dict):
        metadata = {}
    return SafetensorsHeader(
        path=path,
        tensors=tensors,
        metadata={str(k): str(v) for k, v in metadata.items()},
        data_start=8 + header_len,
        file_size=size,
    )


def require_complete(header: SafetensorsHeader) -> None:
    """Raise when the file is shorter than its header says (an interrupted download or copy)."""
    if not header.is_complete:
        have = header.file_size - header.data_start
        raise ModelLoadError(
            f"{header.path.name} is truncated: it holds {max(have, 0):,} of {header.data_size:,} bytes of "
            "tensor data.",
            hint="Download or copy it again.",
        )
