"""Folders input pictures recently came from, and finding a picture again by its hash.

A PNG names its input picture and mask by file name and SHA-256 only (``shareable``), so restoring one looks
for that content: in the user's inputs folder (pasted pictures, painted masks), beside the PNG, then in the
folders pictures were recently restyled from (a batch's input folder included). This list stays on this
machine, in the user data folder; it is never written into a shared file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from app.engine.atomic import atomic_write_text
from app.engine.paths import user_data_dir

MAX_FOLDERS = 20
MAX_SCANNED = 2_000  # pictures hashed per folder when the name does not match: a restore never takes minutes
MAX_PICTURE_BYTES = 200_000_000
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _store() -> Path:
    return user_data_dir() / "recent-input-folders.json"


def inputs_dir() -> Path:
    """Pasted pictures and painted masks: kept (not a cache) because PNGs made from them name them."""
    return user_data_dir() / "inputs"


def recent_input_folders() -> list[Path]:
    try:
        data = json.loads(_store().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in data if isinstance(p, str)] if isinstance(data, list) else []


def remember_input_folders(pictures: Iterable[str]) -> None:
    """Put the folders of ``pictures`` first in the recent list (no write when they already are)."""
    folders = [str(Path(p).resolve().parent) for p in pictures if p]
    if not folders:
        return
    known = [str(p) for p in recent_input_folders()]
    fresh = list(dict.fromkeys([*folders, *known]))[:MAX_FOLDERS]
    if fresh == known:
        return
    try:
        atomic_write_text(_store(), json.dumps(fresh, indent=1))
    except OSError:
        pass  # a read-only data folder only means restores search fewer places


def picture_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def search_folders(png_folder: Path | None) -> list[Path]:
    folders = [inputs_dir(), *([png_folder] if png_folder else []), *recent_input_folders()]
    seen: set[str] = set()
    out = []
    for folder in folders:
        key = os.path.normcase(str(folder.resolve()) if folder.exists() else str(folder))
        if key not in seen and folder.is_dir():
            seen.add(key)
            out.append(folder)
    return out


def find_picture(
    name: str, sha256: str, folders: list[Path], *, size: int | None = None
) -> tuple[Path | None, Path | None]:
    """(the file with this content, else None; a same-named file with other content, else None).

    The same name is tried first in every folder (one hash each), then the pictures of each folder (only those
    of ``size`` bytes when it is known, so a gallery of thousands costs a directory listing, not hashing)."""
    changed = None
    for folder in folders:
        candidate = folder / name if name else None
        if candidate is not None and candidate.is_file():
            if not sha256 or _same(candidate, sha256):
                return candidate, None
            changed = changed or candidate
    if not sha256:
        return None, changed
    for folder in folders:
        try:
            pictures = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES and p.name != name)
        except OSError:
            continue
        if size is not None:
            pictures = [p for p in pictures if _size(p) == size]
        for picture in pictures[:MAX_SCANNED]:
            if _same(picture, sha256):
                return picture, None
    return None, changed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _same(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size <= MAX_PICTURE_BYTES and picture_sha256(path) == sha256
    except OSError:
        return False
