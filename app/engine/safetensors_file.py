"""The safetensors container, read by hand where we need more than the library offers.

The one module for the format, used by base models, adapters and hashes: refusing pickles, reading and
validating headers, reading whole files, serialising, rewriting metadata and hashing. Callers pass the
error class they raise (``ModelLoadError``, ``AdapterError``) so the same check reads the same everywhere.

Why not only ``safetensors.safe_open``: scanning a shelf or detecting a 7 GB checkpoint's family must read
metadata without touching tensor bytes, with a bound on the header size (a hostile file can claim a
multi-GB header), and a metadata edit must copy the tensor bytes verbatim so the tensor hash stays the same.

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
from app.engine.errors import UserError

# The safetensors format itself caps the header at 100 MB; anything larger is not a real header.
MAX_HEADER_BYTES = 100_000_000
# The largest real LoRA headers are a few hundred KB (thousands of tensors, a 256 px thumbnail, kohya's
# tag counts); a header this big is junk, and parsing it on every shelf scan would cost seconds.
MAX_ADAPTER_HEADER_BYTES = 8 * 1024 * 1024
CHANGED_HINT = "Another program (or a teammate) was writing it."

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


def refuse_pickle(path: str | os.PathLike[str], *, error: type[UserError] = UserError) -> None:
    """Raise for a pickle-format file (by its name): StyleShelf never unpickles a file a user was sent."""
    path = Path(path)
    if is_pickle_path(path):
        raise error(
            f"{path.name} is a pickled checkpoint ({path.suffix}); StyleShelf never opens pickles because they "
            "can run code when opened.",
            hint="Ask for (or download) the .safetensors version, or convert it with a tool you trust.",
        )


def read_header(
    path: str | os.PathLike[str],
    *,
    error: type[UserError] = UserError,
    strict: bool = True,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> Header:
    """Parse and validate the header of ``path`` without reading tensor data; pickles are refused by name.

    ``strict`` (the default) also refuses a file whose tensor data is cut short. Base-model detection
    passes ``strict=False``: a truncated checkpoint still yields its header, so its family is known in
    milliseconds, and ``require_complete`` refuses it before any load.
    ``max_header_bytes`` lets a caller that knows its files are small (adapters) refuse sooner.
    Problems raise ``error`` (ModelLoadError, AdapterError…) with a one-line reason.
    """
    path = Path(path)
    name = path.name
    refuse_pickle(path, error=error)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            n = _header_length(head, name, size, error, max_header_bytes, sniff=lambda: head + fh.read(56))
            raw = fh.read(n)
    except OSError as err:
        raise _open_error(path, err, error) from None
    if len(raw) < n:  # the size was checked above: the file shrank while we read it
        raise error(f"{name} changed while it was read; try again.", hint=CHANGED_HINT)
    return parse_header_bytes(raw, path, data_offset=8 + n, file_size=size, error=error, strict=strict)


def require_complete(header: Header, *, error: type[UserError] = UserError) -> None:
    """Raise when the file is shorter than its header says (an interrupted download or copy)."""
    if not header.is_complete:
        have = header.file_size - header.data_offset
        raise error(
            f"{header.path.name} is truncated: it holds {max(have, 0):,} of {header.data_size:,} bytes of tensor data.",
            hint="Download or copy it again.",
        )


def _open_error(path: Path, err: OSError, error: type[UserError]) -> UserError:
    """The one-line reason for a file that cannot be opened (both readers say the same)."""
    if isinstance(err, FileNotFoundError):
        return error(f"{path} does not exist.")
    if isinstance(err, IsADirectoryError):
        return error(f"{path} is a folder, not a .safetensors file.")
    if isinstance(err, PermissionError):
        return error(f"{path}: permission denied.")
    return error(f"{path}: cannot be read ({err.strerror or err}).")


def read_whole_file(
    path: str | os.PathLike[str], *, error: type[UserError] = UserError
) -> tuple[bytes, os.stat_result]:
    """All bytes of ``path``, read into memory, and checked to be one version of the file (with its stat).

    Why not a memory map (what ``safetensors.safe_open``/``load_file`` use): when another process
    truncates a mapped file (``cp new.safetensors shared/style.safetensors`` on a team share), touching
    the lost pages kills this process with SIGBUS. A read never does; a file replaced or rewritten during
    the read is caught by comparing size, mtime and inode before and after.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            blob = fh.read()
            after = os.fstat(fh.fileno())
        now = os.stat(path)
    except OSError as err:
        raise _open_error(path, err, error) from None
    stamps = {_stamp(st) for st in (before, after, now)}
    if len(stamps) != 1 or len(blob) != before.st_size:
        raise error(f"{path.name} changed while it was read; try again.", hint=CHANGED_HINT)
    return blob, now


def read_file(
    path: str | os.PathLike[str], *, error: type[UserError] = UserError, max_header_bytes: int = MAX_HEADER_BYTES
) -> tuple[Header, bytes, os.stat_result]:
    """The whole file in memory (see ``read_whole_file``) with its validated header; pickles are refused."""
    path = Path(path)
    refuse_pickle(path, error=error)
    blob, st = read_whole_file(path, error=error)
    return header_from_bytes(blob, path, error=error, max_header_bytes=max_header_bytes), blob, st


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def header_from_bytes(
    blob: bytes,
    path: Path,
    *,
    error: type[UserError] = UserError,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> Header:
    """The header of a whole file already in memory (complete files only)."""
    n = _header_length(blob[:8], path.name, len(blob), error, max_header_bytes, sniff=lambda: blob[:64])
    return parse_header_bytes(blob[8 : 8 + n], path, data_offset=8 + n, file_size=len(blob), error=error)


def _header_length(head: bytes, name: str, size: int, error: type[UserError], limit: int, sniff) -> int:
    """The header length from the first 8 bytes, or a refusal that says what the file looks like instead."""
    if len(head) < 8:
        raise error(f"{name} is empty or truncated ({size} bytes): not a safetensors file.")
    n = int.from_bytes(head, "little")
    if n == 0 or n > limit or 8 + n > size:
        what = sniff_format(sniff())
        if what:
            raise error(f"{name} is {what}, not a safetensors file.", hint=_SNIFF_HINTS.get(what, ""))
    if limit < n <= MAX_HEADER_BYTES and 8 + n <= size:
        raise error(
            f"{name}: its header is {n:,} bytes, far beyond any real file of this kind (limit {limit:,}); refused.",
            hint="It is junk or padded on purpose; ask for the file again.",
        )
    if n == 0 or n > limit:
        # What to do first; the number is for whoever made the file (the GUI shows it under "Details").
        raise error(
            f"{name} is damaged or not a safetensors file.",
            hint="Ask for it again, or download it again.",
            details=f"Its header claims {n:,} bytes (limit {limit:,}).",
        )
    if 8 + n > size:
        raise error(
            f"{name} is truncated: the file ends inside its header ({size:,} of at least {8 + n:,} bytes).",
            hint="Download or copy it again.",
        )
    return n


# What a file that is not safetensors usually is, by its first bytes (renamed downloads and checkpoints).
_PICKLE = "a Python pickle (a PyTorch .ckpt/.pt/.bin renamed?)"
_ZIP = "a zip archive (PyTorch's .pt/.ckpt format, renamed?)"
_HTML = "a web page (HTML)"
_LFS = "a Git LFS pointer"
_SNIFF_HINTS = {
    _PICKLE: "Pickles can run code when opened and are refused; ask for the .safetensors version.",
    _ZIP: "Ask for the .safetensors version.",
    _HTML: "The download probably failed (a login or error page); download it again.",
    _LFS: "Fetch the real file (git lfs pull).",
}


def sniff_format(start: bytes) -> str:
    """A short description of what ``start`` (a file's first bytes) looks like, or "" when unknown."""
    if len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5:
        return _PICKLE
    if start.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _ZIP
    if start.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if start.startswith(b"version https://git-lfs"):
        return _LFS
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return _HTML
    if text.startswith((b"{", b"[")):
        return "a JSON text file"
    if start.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF")):
        return "an image"
    if start.startswith(b"GGUF"):
        return "a GGUF model"
    return ""


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
    except RecursionError:  # "[[[[…" : a real header nests three levels deep
        raise error(f"{name} is corrupt: malformed safetensors header (nested too deeply).") from None
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, and ints over Python's digit limit
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
            if not isinstance(entry["shape"], list) or not isinstance(entry["data_offsets"], list):
                raise TypeError
            shape = tuple(_whole(d) for d in entry["shape"])
            begin, end = (_whole(o) for o in entry["data_offsets"])
        except (TypeError, KeyError, ValueError, OverflowError):
            raise error(f"{name} is corrupt: malformed header entry for tensor {short_repr(key)}.") from None
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES or any(d < 0 for d in shape) or not 0 <= begin <= end:
            raise error(f"{name} is corrupt: malformed header entry for tensor {short_repr(key)}.")
        if (end - begin) != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise error(f"{name} is corrupt: tensor {short_repr(key)} has a size that does not match its shape.")
        if strict and end > data_len:
            raise error(
                f"{name} is truncated: tensor {short_repr(key)} runs past the end of the file.",
                hint="Download or copy it again.",
            )
        tensors[key] = TensorSpec(dtype, shape, begin, end)
    _check_packed(tensors, name, data_len if strict else None, error)
    return Header(path, dict(meta_raw), tensors, data_offset, file_size)


def _check_packed(tensors: dict[str, TensorSpec], name: str, data_len: int | None, error: type[UserError]) -> None:
    """The format's rule: tensors tile the data section exactly, no overlap, no hole (no room for a
    second file hidden inside: a polyglot); with ``data_len``, also no bytes after the last tensor."""
    expected = 0
    for key, spec in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if spec.begin != expected:
            what = "overlaps another tensor" if spec.begin < expected else "leaves a hole before it"
            raise error(f"{name} is corrupt: tensor {short_repr(key)} {what}.")
        expected = spec.end
    if data_len is not None and data_len > expected:
        raise error(f"{name} is corrupt: {data_len - expected:,} unexplained bytes after its last tensor.")


def short_repr(text: str, limit: int = 80) -> str:
    """``repr`` of a tensor name for a one-line message, shortened (a hostile file's key can be megabytes)."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 5] + "…" + r[-4:]


def _whole(value: object) -> int:
    """A JSON whole number (not a bool, float or string that ``int`` would also accept)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


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


def rewrite_metadata(
    path: str | os.PathLike[str],
    metadata: dict[str, str],
    *,
    error: type[UserError] = UserError,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> None:
    """Replace the metadata of ``path`` atomically; tensor entries and bytes are copied unchanged."""
    path = Path(path)
    header = read_header(path, error=error, max_header_bytes=max_header_bytes)
    with atomic_path(path) as tmp:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(encode_header(metadata, header.tensors))
            src.seek(header.data_offset)
            shutil.copyfileobj(src, dst, 1 << 20)


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
