"""A file rewritten in place with the same size and its old mtime (`cp -p` over it) is a new version: no cache
keeps its old hashes (found on the team shelf: the watcher saw the change, the hash caches did not)."""

from __future__ import annotations

import os
import time

from app.engine.adapters import read_adapter_info
from app.engine.generate.identity import adapter_identity
from app.engine.hashcache import cached_hashes
from tests.helpers.tiny_lora import write_tiny_lora


def test_same_size_rewrite_with_the_old_mtime_gets_new_hashes(tmp_path):
    path = write_tiny_lora(tmp_path / "style.safetensors", seed=1)
    other = write_tiny_lora(tmp_path / "other.safetensors", seed=2)
    assert path.stat().st_size == other.stat().st_size  # same shapes: a same-size replacement
    first = read_adapter_info(path, with_hashes=True).tensor_sha256
    assert cached_hashes(path) is not None and adapter_identity(path).tensor_sha256 == first
    st = path.stat()
    time.sleep(0.01)
    path.write_bytes(other.read_bytes())  # in place, like cp: same inode, same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # like cp -p: the old modification time
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert cached_hashes(path) is None
    second = read_adapter_info(path, with_hashes=True).tensor_sha256
    assert second != first and adapter_identity(path).tensor_sha256 == second
