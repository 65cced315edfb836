"""Hashes of adapter files, cached by path + size + mtime so a shelf scan hashes each file once.

The cache is a JSON file under the user cache folder; losing or corrupting it only costs re-hashing.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from app.engine.adapters.sftfile import Header, data_sha256, file_sha256
from app.engine.atomic import atomic_write_text
from app.engine.paths import user_cache_dir

_LOCK = threading.Lock()
_MAX_ENTRIES = 5000  # oldest entries dropped beyond this, so the file never grows without bound


def _cache_file() -> Path:
    return user_cache_dir() / "adapter-hashes.json"


_memo: dict[str, tuple[tuple[int, int], dict[str, dict]]] = {}  # cache path → (file stamp, parsed)


def _load() -> dict[str, dict]:
    """The cache as a dict; re-parsed only when the file changed (a shelf scan reads it once, not per file)."""
    path = _cache_file()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        memo = _memo.get(str(path))
        if memo and memo[0] == stamp:
            return dict(memo[1])
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
        _memo[str(path)] = (stamp, data)
        return dict(data)
    except (OSError, ValueError):
        return {}


def cached_hashes(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """The cached (sha256, tensor sha256) when the file is unchanged since it was hashed; never hashes."""
    path = Path(path).resolve()
    try:
        st = path.stat()
    except OSError:
        return None
    with _LOCK:
        cached = _load().get(str(path))
    if cached and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns:
        return cached["sha256"], cached["tensor_sha256"]
    return None


def file_hashes(path: str | os.PathLike[str], header: Header | None = None) -> tuple[str, str]:
    """(full-file sha256, tensor-data sha256) of ``path``, from the cache when size and mtime match."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with _LOCK:
        cached = _load().get(key)
    if cached and all(cached.get(k) == v for k, v in stamp.items()):
        return cached["sha256"], cached["tensor_sha256"]
    full, tensors = file_sha256(path), data_sha256(path, header)
    with _LOCK:
        data = _load()
        data.pop(key, None)
        data[key] = {**stamp, "sha256": full, "tensor_sha256": tensors}
        while len(data) > _MAX_ENTRIES:
            data.pop(next(iter(data)))
        try:
            atomic_write_text(_cache_file(), json.dumps(data))
        except OSError:
            pass  # a read-only cache folder only costs speed
    return full, tensors
