"""The safetensors container, read and written by hand where we need more than the library offers.

Why not only ``safetensors.safe_open``: scanning a shelf must read metadata without touching tensor
bytes, with a bound on the header size (a hostile file can claim a multi-GB header), and a metadata
edit must copy the tensor bytes verbatim so the tensor hash stays the same.

Layout: 8-byte little-endian header length N, N bytes of JSON (``__metadata__`` plus one entry per
tensor: dtype, shape, data_offsets relative to the data section), then the data section.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.engine.atomic import atomic_path
from app.engine.errors import AdapterError

# safetensors itself allows 100 MB; real LoRA headers are a few KB plus a thumbnail (~100 KB) and tag
# frequencies. 32 MiB leaves room for huge tag lists while refusing absurd claims quickly.
MAX_HEADER_BYTES = 32 * 1024 * 1024

DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}  # fmt: skip

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets inside the data section
    end: int


@dataclass(frozen=True)
class Header:
    metadata: dict[str, str]
    tensors: dict[str, TensorSpec]
    data_offset: int  # absolute file offset of the data section
    file_size: int


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise AdapterError(
            f"{path.name}: pickled checkpoints ({path.suffix}) can run code when opened and are refused.",
            hint="Ask for a .safetensors version of this adapter.",
        )


def read_header(path: str | os.PathLike[str]) -> Header:
    """Parse and validate the header of ``path`` without reading tensor data."""
    path = Path(path)
    refuse_pickle(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise AdapterError(f"{path.name}: file is truncated (only {size} bytes).")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER_BYTES:
                raise AdapterError(
                    f"{path.name}: header claims {n:,} bytes (limit {MAX_HEADER_BYTES:,}); not a usable safetensors file."
                )
            if n + 8 > size:
                raise AdapterError(f"{path.name}: file is truncated (header runs past the end of the file).")
            raw = fh.read(n)
    except FileNotFoundError:
        raise AdapterError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise AdapterError(f"{path}: is a folder, not an adapter file.") from None
    except PermissionError:
        raise AdapterError(f"{path}: permission denied.") from None
    return parse_header_bytes(raw, path.name, data_offset=8 + n, file_size=size)


def parse_header_bytes(raw: bytes, name: str, *, data_offset: int, file_size: int) -> Header:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AdapterError(f"{name}: malformed safetensors header (not JSON); the file is damaged or not safetensors.") from None
    if not isinstance(obj, dict):
        raise AdapterError(f"{name}: malformed safetensors header (not a JSON object).")
    meta_raw = obj.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict) or not all(isinstance(v, str) for v in meta_raw.values()):
        raise AdapterError(f"{name}: malformed safetensors metadata (values must be strings).")
    data_len = file_size - data_offset
    tensors: dict[str, TensorSpec] = {}
    for key, entry in obj.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise AdapterError(f"{name}: malformed header entry for tensor {key!r}.") from None
        if dtype not in DTYPE_SIZES or any(d < 0 for d in shape) or not 0 <= begin <= end:
            raise AdapterError(f"{name}: malformed header entry for tensor {key!r}.")
        if (end - begin) != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise AdapterError(f"{name}: tensor {key!r} has a size that does not match its shape.")
        if end > data_len:
            raise AdapterError(f"{name}: file is truncated (tensor {key!r} runs past the end of the file).")
        tensors[key] = TensorSpec(dtype, shape, begin, end)
    return Header(dict(meta_raw), tensors, data_offset, file_size)


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
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_sha256(path: str | os.PathLike[str], header: Header | None = None) -> str:
    """SHA-256 of the tensor data section (everything after the header).

    This is the tensor-only hash: a metadata edit rewrites the header but copies these bytes verbatim,
    so it does not change. It is the same definition AUTOMATIC1111 ("addnet" hash) and kohya
    (``sshs_model_hash``) use, so our hashes match theirs for the same file.
    """
    header = header or read_header(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(header.data_offset)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def serialize(tensors: dict) -> tuple[dict[str, TensorSpec], bytes, str]:
    """Serialise torch tensors to (tensor header entries, data section bytes, sha256 of the data section).

    The caller adds metadata with ``encode_header(metadata, specs) + data``: the data section does not
    depend on the metadata, so the tensor hash can be stored in the very header it describes.
    """
    from safetensors.torch import save

    blob = save({k: v.contiguous() for k, v in tensors.items()})
    n = int.from_bytes(blob[:8], "little")
    data = blob[8 + n :]
    header = parse_header_bytes(blob[8 : 8 + n], "<new>", data_offset=8 + n, file_size=len(blob))
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
