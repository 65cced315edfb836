"""Which shelf file a recorded adapter (from a stack file, a PNG or a preset) means, and whether it changed.

A record names an adapter twice: by its tensor hash (the exact weights) and by its name (file stem or
title). The hash wins, across every shelf folder, so a renamed or moved file is still found. When the
hash is not on the shelf, the name finds the file that carries that name now, and the user is told the
weights differ ("made with an earlier version of ink-house"). When the hash IS on the shelf but a file
under that name has other weights (a teammate updated it), the exact old version is used and the user is
told a newer one exists. Nothing is found: the entry is named as missing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Protocol

from app.engine.shelf.stack import StackEntry

BY_HASH, BY_NAME, MISSING = "hash", "name", "missing"


class ShelfFile(Protocol):  # what a LibraryEntry offers (duck-typed so tests can pass plain records)
    path: Path

    @property
    def title(self) -> str: ...

    @property
    def tensor_sha256(self) -> str: ...


@dataclass
class Resolution:
    """One recorded entry matched to the shelf. ``entry.path`` is "" when nothing was found."""

    entry: StackEntry
    how: str  # hash | name | missing
    note: str = ""  # one sentence for the user when the weights differ from the record, or nothing was found
    older_path: str = ""  # the recorded (older) version, when it is still somewhere on the shelf
    current_path: str = ""  # the file under the entry's name now, when its weights differ from the record

    @property
    def label(self) -> str:
        return display_name(self.entry)


def display_name(entry: StackEntry) -> str:
    return entry.name or (Path(entry.path).stem if entry.path else "") or (entry.sha256[:12] or "?")


def _names(entry: StackEntry) -> set[str]:
    keys = {entry.name.casefold().removesuffix(".safetensors")} if entry.name else set()
    if entry.path:
        keys.add(Path(entry.path).stem.casefold())
    return keys - {""}


def _named(entry: StackEntry, shelf: list[ShelfFile]) -> list[ShelfFile]:
    keys = _names(entry)
    return [f for f in shelf if Path(f.path).stem.casefold() in keys or (f.title or "").casefold() in keys]


def _author(f: ShelfFile) -> str:
    return str(getattr(getattr(f, "info", None), "author", "") or "").casefold()


def resolve_entries(entries: Iterable[StackEntry], shelf: Iterable[ShelfFile]) -> list[Resolution]:
    """Match each entry to a shelf file: by tensor hash first, then by name (with a note), else missing.

    ``shelf`` is the scanned library (with hashes). Entries come back as copies with ``path`` set.
    """
    files = [f for f in shelf if getattr(f, "tensor_sha256", "")]
    by_hash: dict[str, ShelfFile] = {}
    for f in files:
        by_hash.setdefault(f.tensor_sha256, f)
    out = []
    for original in entries:
        entry = replace(original)
        name = display_name(entry)
        exact = by_hash.get(entry.sha256) if entry.sha256 else None
        if exact is None and not entry.sha256 and entry.path and Path(entry.path).is_file():
            exact = next((f for f in files if Path(f.path).resolve() == Path(entry.path).resolve()), None)
        newer = [f for f in _named(entry, files) if entry.sha256 and f.tensor_sha256 != entry.sha256]
        if exact is not None:
            # Same title from another person is a different style, not a newer version of this one.
            newer = [f for f in newer if not (_author(f) and _author(exact) and _author(f) != _author(exact))]
            entry.path = str(exact.path)
            entry.sha256 = exact.tensor_sha256
            res = Resolution(entry, BY_HASH)
            if newer:
                current = newer[0]
                res.older_path, res.current_path = str(exact.path), str(current.path)
                res.note = (
                    f"Made with an earlier version of {name}: using that version ({Path(exact.path).name}); "
                    f"the current {name} is {current.path}."
                )
            out.append(res)
            continue
        named = _named(entry, files)
        if named:
            current = named[0]
            entry.path = str(current.path)
            res = Resolution(entry, BY_NAME, current_path=str(current.path))
            if entry.sha256 and current.tensor_sha256 != entry.sha256:
                res.note = (
                    f"Made with an earlier version of {name}, which is no longer on the shelf: "
                    f"using the current {Path(current.path).name} instead, so results will differ."
                )
            entry.sha256 = current.tensor_sha256
            out.append(res)
            continue
        entry.path = ""
        out.append(Resolution(entry, MISSING, note=f"{name} is not on the shelf (in none of its folders)."))
    return out
