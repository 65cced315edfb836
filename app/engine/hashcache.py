"""Hashes of .safetensors files (adapters and base models), cached per file version so each is hashed once.

The one hash cache: a shelf scan, generation (adapter identities, the base model's A1111 "Model hash") and
training metadata all read it. It is a JSON file under the user cache folder (named for its first use,
adapters), kept across runs so a multi-GB UNet is hashed once, not once per process; losing or corrupting
it (a whole file or one entry) only costs re-hashing.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from app.engine.atomic import atomic_write_text
from app.engine.errors import AdapterError
from app.engine.paths import user_cache_dir
from app.engine.safetensors_file import CHANGED_HINT, Header, data_sha256, file_sha256

_LOCK = threading.Lock()
_MAX_ENTRIES = 5000  # oldest entries dropped beyond this, so the file never grows without bound
_HEX64 = re.compile(r"[0-9a-f]{64}")


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
    except (OSError, ValueError, RecursionError):
        return {}


def _stamp(st: os.stat_result) -> dict[str, int]:
    # Size and mtime alone miss a same-size copy made with `cp -p` (mtime kept): the inode and the change
    # time, which no copy tool can set, tell that version apart too.
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns}


def _valid(entry: object, st: os.stat_result) -> tuple[str, str] | None:
    """The (sha256, tensor sha256) of a cache entry that matches ``st``; None for a stale or damaged entry."""
    if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in _stamp(st).items()):
        return None
    full, tensors = entry.get("sha256"), entry.get("tensor_sha256")
    if isinstance(full, str) and isinstance(tensors, str) and _HEX64.fullmatch(full) and _HEX64.fullmatch(tensors):
        return full, tensors
    return None


def cached_hashes(path: str | os.PathLike[str], st: os.stat_result | None = None) -> tuple[str, str] | None:
    """The cached (sha256, tensor sha256) when the file (as of ``st``, default: now) is unchanged since it was
    hashed; never hashes."""
    path = Path(path).resolve()
    try:
        st = st or path.stat()
    except OSError:
        return None
    with _LOCK:
        return _valid(_load().get(str(path)), st)


def remember_hashes(path: str | os.PathLike[str], st: os.stat_result, full: str, tensors: str) -> None:
    """Store hashes computed by the caller (e.g. from the file's bytes in memory) for the version ``st``."""
    key = str(Path(path).resolve())
    with _LOCK:
        data = _load()
        data.pop(key, None)
        data[key] = {**_stamp(st), "sha256": full, "tensor_sha256": tensors}
        while len(data) > _MAX_ENTRIES:
            data.pop(next(iter(data)))
        try:
            atomic_write_text(_cache_file(), json.dumps(data))
        except OSError:
            pass  # a read-only cache folder only costs speed


def file_hashes(path: str | os.PathLike[str], header: Header | None = None) -> tuple[str, str]:
    """(full-file sha256, tensor-data sha256) of ``path``, from the cache when size and mtime match."""
    path = Path(path).resolve()
    st = path.stat()
    with _LOCK:
        cached = _valid(_load().get(str(path)), st)
    if cached:
        return cached
    full, tensors = file_sha256(path), data_sha256(path, header)
    after = path.stat()
    if (after.st_ino, after.st_size, after.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns):
        raise AdapterError(f"{path.name} changed while it was read; try again.", hint=CHANGED_HINT)
    remember_hashes(path, st, full, tensors)
    return full, tensors
