"""House-style stacks as small shareable files: ``<name>.stack.json`` in any shelf folder.

A stack preset lives in one user's data folder; a stack *file* sits beside the adapters in a shared
folder, so the whole team gets the same "house style". It records, per entry, the adapter's file name,
title, tensor hash, strengths and order; never a path, because paths differ from machine to machine.
Opening one resolves every entry by hash across all shelf folders, then by name (with a note when the
weights differ), and names what cannot be found (``app.engine.shelf.versions``).

    {"format": "styleshelf-stack-file", "version": 1, "title": "Ink house", "author": "Ana",
     "description": "…", "created": "2026-12-01T03:00:00+00:00",
     "entries": [{"order": 1, "name": "ink", "title": "Ink outlines", "sha256": "…", "autov2": "…",
                  "strength": 0.8, "text_encoder_strength": null, "enabled": true}]}
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from app.engine.atomic import atomic_write_text
from app.engine.author import get_author
from app.engine.errors import UserError
from app.engine.shelf.names import safe_stem
from app.engine.shelf.stack import StackEntry

SUFFIX = ".stack.json"
FORMAT = "styleshelf-stack-file"
FORMAT_VERSION = 1
MAX_BYTES = 1_000_000  # a stack of hundreds of entries is a few tens of KB; anything bigger is not one
MAX_TEXT = 2_000


@dataclass
class StackFile:
    title: str
    entries: list[StackEntry]  # in order; ``path`` is "" until resolved against a shelf
    author: str = ""
    description: str = ""
    created: str = ""
    path: str = ""  # where it was read from / written to
    titles: dict[int, str] = field(default_factory=dict, repr=False)  # entry index → adapter title, for display


def is_stack_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).name.lower().endswith(SUFFIX)


def stack_file_path(folder: str | os.PathLike[str], title: str) -> Path:
    if not title.strip():
        raise UserError("A stack file needs a name.")
    return Path(folder) / f"{safe_stem(title, fallback='stack')}{SUFFIX}"


def _strength(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number ({value!r})") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is not a finite number")
    return number


def to_document(stack: StackFile, *, titles: dict[int, str] | None = None) -> dict[str, Any]:
    entries = []
    for i, e in enumerate(stack.entries):
        file_name = Path(e.path).name if e.path else ""
        entries.append({
            "order": i + 1,
            "name": Path(file_name).stem if file_name else e.name,
            "title": (titles or stack.titles).get(i, e.name),
            "sha256": e.sha256,
            "strength": float(e.weight),
            "text_encoder_strength": None if e.text_encoder_weight is None else float(e.text_encoder_weight),
            "enabled": bool(e.enabled),
        })  # fmt: skip
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "title": stack.title.strip(), "author": stack.author,
        "description": stack.description, "created": stack.created, "entries": entries,
    }  # fmt: skip


def save_stack_file(
    folder: str | os.PathLike[str],
    title: str,
    entries: Iterable[StackEntry],
    *,
    description: str = "",
    author: str | None = None,
    titles: dict[int, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``<title>.stack.json`` into ``folder`` atomically; entries need their tensor hash (``sha256``).

    ``author`` defaults to the user's author preference. An existing file is replaced only with ``overwrite``.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"Folder {folder} does not exist.", hint="Create it first or pick a shelf folder.")
    entries = list(entries)
    if not entries:
        raise UserError("A stack file needs at least one adapter.")
    unhashed = [e.name or Path(e.path).name for e in entries if not e.sha256]
    if unhashed:
        raise UserError(f"No tensor hash for {', '.join(unhashed)}: save stacks of adapters that are on the shelf.")
    if len(description) > MAX_TEXT or len(title) > MAX_TEXT:
        raise UserError(f"Title and description are limited to {MAX_TEXT} characters.")
    target = stack_file_path(folder, title)
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists.", hint="Choose another name, or replace it (--force).")
    titles = dict(titles) if titles is not None else _titles_from_files(entries)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    stack = StackFile(title=title.strip(), entries=entries, author=get_author() if author is None else author.strip(),
                      description=description.strip(), created=now)  # fmt: skip
    text = json.dumps(to_document(stack, titles=titles), indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(target, text)
    return target


def _titles_from_files(entries: list[StackEntry]) -> dict[int, str]:
    """Each adapter's own title (header only), so a teammate sees "Ink outlines", not just a file name."""
    from app.engine.adapters import read_adapter_info

    titles = {}
    for i, e in enumerate(entries):
        try:
            titles[i] = read_adapter_info(Path(e.path), with_hashes=False).title if e.path else e.name
        except (UserError, OSError):
            titles[i] = e.name
    return titles


def read_stack_file(path: str | os.PathLike[str]) -> StackFile:
    """Parse a stack file; UserError with the reason when it is missing, too big, damaged or too new."""
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path.name} is {size:,} bytes: too big to be a stack file.")
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"Stack file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path.name}: not a readable stack file ({err}).") from None
    try:
        return _from_document(doc, path)
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise UserError(f"{path.name}: damaged stack file ({err}).") from None


def _from_document(doc: Any, path: Path) -> StackFile:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(
            f"it is not a StyleShelf stack file (format {doc.get('format') if isinstance(doc, dict) else None!r})"
        )
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"unknown version {version!r}")
    if version > FORMAT_VERSION:
        raise UserError(f"{path.name} was written by a newer StyleShelf (stack format {version}); update to open it.")
    raw = doc.get("entries")
    if not isinstance(raw, list):
        raise ValueError("no list of entries")
    items = sorted(enumerate(raw), key=lambda p: (_order(p[1], p[0]), p[0]))
    entries, titles = [], {}
    for i, (_pos, item) in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"entry {i + 1} is not an object")
        name, sha = str(item.get("name") or ""), str(item.get("sha256") or "").lower()
        if not name and not sha:
            raise ValueError(f"entry {i + 1} has neither a name nor a hash")
        if sha and not (len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
            raise ValueError(f"entry {i + 1} has a malformed hash")
        te = item.get("text_encoder_strength")
        entries.append(StackEntry(
            path="", enabled=bool(item.get("enabled", True)),
            weight=_strength(item.get("strength", 1.0), f"entry {i + 1} strength"),
            text_encoder_weight=None if te is None else _strength(te, f"entry {i + 1} text-encoder strength"),
            name=name, sha256=sha,
        ))  # fmt: skip
        titles[i] = str(item.get("title") or name)
    return StackFile(
        title=str(doc.get("title") or path.name[: -len(SUFFIX)]), entries=entries, author=str(doc.get("author") or ""),
        description=str(doc.get("description") or ""), created=str(doc.get("created") or ""), path=str(path),
        titles=titles,
    )  # fmt: skip


def _order(item: Any, position: int) -> float:
    value = item.get("order") if isinstance(item, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float(position + 1)


def find_stack_files(folders: Iterable[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Every ``*.stack.json`` in the shelf folders (recursively, like adapters), hidden/temporary files skipped."""
    seen: set[Path] = set()
    out = []
    for kind, folder in folders:
        if not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).rglob(f"*{SUFFIX}"), key=lambda p: str(p).casefold()):
            if path.name.startswith(".") or not path.is_file():
                continue
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                out.append((kind, path))
    return out


def open_stack_file(path: str | os.PathLike[str], library: Any) -> tuple[StackFile, list[Any]]:
    """Read a stack file and match its entries to ``library`` (an ``app.engine.shelf.library.Library``).

    The stack file's own folder is searched too, so a stack shared beside its adapters always finds them.
    Returns the file and one ``versions.Resolution`` per entry (``entry.path`` "" when missing).
    """
    from app.engine.shelf.library import OUTSIDE, Library
    from app.engine.shelf.versions import resolve_entries

    stack = read_stack_file(path)
    here = Path(stack.path).parent
    if library.kind_of(Path(stack.path)) == OUTSIDE:
        library = Library([*library.extra_folders, here], user_folder=library.user_folder,
                          bundled_folder=library.bundled_folder)  # fmt: skip
    return stack, resolve_entries(stack.entries, library.scan(with_hashes=True))
