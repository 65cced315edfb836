"""Who an adapter (or base model) file is: hashes and the few metadata fields generation needs.

Adapters are named inside diffusers after their tensor hash, not their display name, so two files
with the same title never collide and a renamed or re-titled file is not loaded twice. The shelf's
``read_adapter_info`` (app.engine.adapters) is the source of truth when present; the local reader
below covers a checkout without it and base models (A1111's "Model hash" = AutoV2 of the file).
Hashes are cached by path + size + mtime, so re-hashing only happens when a file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from app.engine.errors import AdapterError, UserError

_CHUNK = 8 * 1024 * 1024
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class AdapterIdentity:
    path: str
    tensor_sha256: str  # unchanged by metadata edits
    autov2: str  # first 10 hex of the full-file SHA-256, as Civitai and A1111 write it
    title: str
    trigger_phrase: str

    @property
    def adapter_name(self) -> str:
        """The name the adapter gets inside diffusers/PEFT (no dots allowed there)."""
        return f"ss_{self.tensor_sha256[:16]}"

    @property
    def a1111_name(self) -> str:
        """The ``<lora:NAME:w>`` name: A1111 uses the file stem; ':' ',' '<' '>' would break its parser."""
        stem = Path(self.path).stem
        return "".join("_" if c in ":,<>" else c for c in stem)


_lock = threading.Lock()
_identity_cache: dict[tuple[str, int, int], AdapterIdentity] = {}
_file_hash_cache: dict[tuple[str, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Full-file SHA-256, cached by path + size + mtime."""
    path = Path(path)
    key = _stat_key(path)
    with _lock:
        if key in _file_hash_cache:
            return _file_hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _lock:
        _file_hash_cache[key] = value
    return value


def base_model_hash(path: str | os.PathLike[str]) -> str:
    """A1111-style "Model hash" (10 hex): of the file, or of the UNet weights of a diffusers folder."""
    path = Path(path)
    if path.is_dir():
        unet = path / "unet"
        candidates = sorted(unet.glob("*.safetensors")) or sorted(unet.glob("*.bin"))
        if not candidates:
            return ""
        path = candidates[0]
    if not path.is_file():
        return ""
    if path.suffix.lower() == ".safetensors":
        try:  # the shelf's persistent hash cache: a multi-GB UNet is hashed once, not once per process
            from app.engine.adapters.hashcache import file_hashes

            return file_hashes(path)[0][:10]
        except (ImportError, UserError, OSError, ValueError):
            pass  # hashed below without the cache
    return file_sha256(path)[:10]


def adapter_identity(path: str | os.PathLike[str]) -> AdapterIdentity:
    """Hashes, title and trigger phrase of an adapter file; AdapterError if it cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"Adapter file not found: {path}")
    key = _stat_key(path)
    with _lock:
        if key in _identity_cache:
            return _identity_cache[key]
    ident = _from_shelf(path) or _read_locally(path)
    with _lock:
        _identity_cache[key] = ident
    return ident


def _from_shelf(path: Path) -> AdapterIdentity | None:
    try:
        from app.engine.adapters import read_adapter_info  # the adapters helper's reader, once it exists
    except ImportError:
        return None
    info = read_adapter_info(path)
    get = (lambda k: info.get(k)) if isinstance(info, dict) else (lambda k: getattr(info, k, None))
    tensor_sha = get("tensor_sha256") or get("sha256") or ""
    autov2 = get("autov2") or ""
    if not tensor_sha or not autov2:
        return None
    return AdapterIdentity(
        path=str(path),
        tensor_sha256=str(tensor_sha),
        autov2=str(autov2)[:10],
        title=str(get("title") or path.stem),
        trigger_phrase=str(get("trigger_phrase") or ""),
    )


def _read_locally(path: Path) -> AdapterIdentity:
    if path.suffix.lower() != ".safetensors":
        raise AdapterError(f"{path.name}: only .safetensors adapters are loaded (pickled files can run code).")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise AdapterError(f"{path.name}: file is truncated (no safetensors header).")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise AdapterError(f"{path.name}: malformed safetensors header (length {n} for a {size}-byte file).")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise AdapterError(f"{path.name}: malformed safetensors header ({err}).") from None
        digest = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    meta = header.get("__metadata__") or {}
    return AdapterIdentity(
        path=str(path),
        tensor_sha256=digest.hexdigest(),
        autov2=file_sha256(path)[:10],
        title=str(meta.get("modelspec.title") or meta.get("ss_output_name") or path.stem),
        trigger_phrase=str(meta.get("modelspec.trigger_phrase") or ""),
    )
