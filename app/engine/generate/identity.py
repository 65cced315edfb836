"""Who an adapter (or base model) file is: hashes and the few metadata fields generation needs.

Adapters are named inside diffusers after their tensor hash, not their display name, so two files
with the same title never collide and a renamed or re-titled file is not loaded twice. The shelf's
``read_adapter_info`` (app.engine.adapters) is the source of truth for adapters; base models get
A1111's "Model hash" (AutoV2 of the file).
Hashes come from the one hash cache (``app.engine.hashcache``); identities are memoised per file version
(path, size, mtime, inode, ctime), so neither is recomputed until a file changes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from app.engine.errors import AdapterError, UserError
from app.engine.safetensors_file import file_sha256


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
_identity_cache: dict[tuple[str, int, int, int, int], AdapterIdentity] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    """A file version: a same-size replacement with its mtime kept (`cp -p`) still changes inode or ctime."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _cached(cache: dict, path: Path, compute):
    """``compute(path)`` once per file version (path + size + mtime); thread-safe."""
    key = _stat_key(path)
    with _lock:
        if key in cache:
            return cache[key]
    value = compute(path)
    with _lock:
        cache[key] = value
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
        from app.engine.hashcache import file_hashes

        try:  # the persistent hash cache: a multi-GB UNet is hashed once, not once per process
            return file_hashes(path)[0][:10]
        except (UserError, OSError, ValueError):
            pass  # a damaged header: hashed below without the cache (loading refuses such a file anyway)
    return file_sha256(path)[:10]  # .bin weights: loading refuses them, so this is never a hot path


def adapter_identity(path: str | os.PathLike[str]) -> AdapterIdentity:
    """Hashes, title and trigger phrase of an adapter file; AdapterError if it cannot be one."""
    path = Path(path)
    if path.is_dir():
        raise AdapterError(f"{path.name} is a folder, not an adapter file.")
    if not path.is_file():
        raise AdapterError(f"Adapter file not found: {path}")
    return _cached(_identity_cache, path, _from_shelf)


def _from_shelf(path: Path) -> AdapterIdentity:
    from app.engine.adapters import read_adapter_info

    info = read_adapter_info(path)
    return AdapterIdentity(
        path=str(path),
        tensor_sha256=info.tensor_sha256,
        autov2=info.autov2[:10],
        title=info.title or path.stem,
        trigger_phrase=info.trigger_phrase or "",
    )
