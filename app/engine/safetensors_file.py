"""The safetensors container, read by hand where we need more than the library offers.

One reader for base models, adapters and hashes. Why not only ``safetensors.safe_open``: scanning a
shelf or detecting a 7 GB checkpoint's family must read metadata without touching tensor bytes, with a
bound on the header size (a hostile file can claim a multi-GB header), and a metadata edit must copy the
tensor bytes verbatim so the tensor hash stays the same.

Layout: 8-byte little-endian header length N, N bytes of JSON (``__metadata__`` plus one entry per
tensor: dtype, shape, data_offsets relative to the data section), then the data section.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from app.engine.errors import UserError

# The safetensors format itself caps the header at 100 MB; anything larger is not a real header.
MAX_HEADER_BYTES = 100_000_000

DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}  # fmt: skip

# Formats that are Python pickles: loading one runs whatever code its author put in it.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets inside the data section
    end: int


@dataclass(frozen=True)
class Header:
    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorSpec]
    data_offset: int  # absolute file offset of the data section (8 + header length)
    file_size: int

    @property
    def data_size(self) -> int:
        return max((t.end for t in self.tensors.values()), default=0)

    @property
    def is_complete(self) -> bool:
        return self.file_size >= self.data_offset + self.data_size

    def shape(self, key: str) -> tuple[int, ...] | None:
        spec = self.tensors.get(key)
        return spec.shape if spec else None


def is_pickle_path(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES


def read_header(path: str | os.PathLike[str], *, error: type[UserError] = UserError, strict: bool = True) -> Header:
    """Parse and validate the header of ``path`` without reading tensor data.

    ``strict`` also refuses a file whose tensor data is cut short; without it a truncated file still
    yields its header (family detection stays possible; the loader then refuses with ``is_complete``).
    Problems raise ``error`` (ModelLoadError, AdapterError…) with a one-line reason.
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise error(f"{name} is empty or truncated ({size} bytes): not a safetensors file.")
            n = int.from_bytes(head, "little")
            if n == 0 or n > MAX_HEADER_BYTES:
                # What to do first; the number is for whoever made the file (in the GUI's "Details").
                raise error(
                    f"{name} is damaged or not a safetensors file.",
                    hint="Ask for it again, or download it again.",
                    details=f"Its header claims {n:,} bytes (limit {MAX_HEADER_BYTES:,}).",
                )
            if 8 + n > size:
                raise error(
                    f"{name} is truncated: the file ends inside its header ({size:,} of at least {8 + n:,} bytes).",
                    hint="Download or copy it again.",
                )
            raw = fh.read(n)
    except FileNotFoundError:
        raise error(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a .safetensors file.") from None
    except PermissionError:
        raise error(f"{path}: permission denied.") from None
    return parse_header_bytes(raw, path, data_offset=8 + n, file_size=size, error=error, strict=strict)


def parse_header_bytes(
    raw: bytes,
    path: Path,
    *,
    data_offset: int,
    file_size: int,
    error: type[UserError] = UserError,
    strict: bool = True,
) -> Header:
    name = path.name
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{name} is corrupt: malformed safetensors header ({err.__class__.__name__}).") from None
    if not isinstance(obj, dict):
        raise error(f"{name} is corrupt: malformed safetensors header (not a JSON object).")
    meta_raw = obj.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict) or not all(isinstance(v, str) for v in meta_raw.values()):
        raise error(f"{name} is corrupt: malformed safetensors metadata (values must be strings).")
    data_len = file_size - data_offset
    tensors: dict[str, TensorSpec] = {}
    for key, entry in obj.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise error(f"{name} is corrupt: malformed header entry for tensor {key!r}.") from None
        if dtype not in DTYPE_SIZES or any(d < 0 for d in shape) or not 0 <= begin <= end:
            raise error(f"{name} is corrupt: malformed header entry for tensor {key!r}.")
        if (end - begin) != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise error(f"{name} is corrupt: tensor {key!r} has a size that does not match its shape.")
        if strict and end > data_len:
            raise error(
                f"{name} is truncated: tensor {key!r} runs past the end of the file.", hint="Download or copy it again."
            )
        tensors[key] = TensorSpec(dtype, shape, begin, end)
    return Header(path, dict(meta_raw), tensors, data_offset, file_size)


def encode_header(metadata: dict[str, str], tensors: dict[str, TensorSpec]) -> bytes:
    """Length prefix + JSON header, padded with spaces so the data section starts 8-byte aligned."""
    obj: dict[str, object] = {}
    if metadata:
        obj["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for key, spec in tensors.items():
        obj[key] = {"dtype": spec.dtype, "shape": list(spec.shape), "data_offsets": [spec.begin, spec.end]}
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the whole file (Civitai's AutoV2 is its first 10 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def data_sha256(path: str | os.PathLike[str], header: Header | None = None) -> str:
    """SHA-256 of the tensor data section (everything after the header).

    This is the tensor-only hash: a metadata edit rewrites the header but copies these bytes verbatim,
    so it does not change. It is the definition AUTOMATIC1111 ("addnet" hash) and kohya
    (``sshs_model_hash``) use, so our hashes match theirs for the same file.
    """
    header = header or read_header(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(header.data_offset)
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
