"""The library: adapters from the user's shelf folder, the bundled ``styles/`` and any extra folders.

Listing reads headers only and lists adapters only: anything else (a training run's checkpoint files,
other models, damaged files) is skipped with a one-line reason (``ShelfScan.skipped``; see ``survey.py``).
Import copies a validated file into the user's folder under a sanitised, atomically claimed name and
refuses a second copy of the same weights (by tensor hash); export writes a single
self-contained file (weights, thumbnail, metadata); remove deletes only files in the user's folder.
Extra folders (e.g. a team share) come from the caller or ``STYLESHELF_ADAPTER_PATH`` (os.pathsep-separated).
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from app.engine.adapters import AdapterInfo, read_adapter_info
from app.engine.adapters.edit import edit_metadata
from app.engine.adapters.info import read_adapter_snapshot
from app.engine.adapters.loader import lora_modules_from_bytes
from app.engine.adapters.sidecar import read_sidecar, write_sidecar
from app.engine.adapters.strength import judge as judge_strength
from app.engine.atomic import atomic_new_file, atomic_path
from app.engine.errors import AdapterError, UserError
from app.engine.paths import BUNDLED_STYLES_DIR, user_data_dir
from app.engine.shelf import presets as _presets
from app.engine.shelf.bake import bake  # noqa: F401  (re-exported: the shelf's one entry point)
from app.engine.shelf.names import safe_stem
from app.engine.shelf.stack import Stack
from app.engine.shelf.survey import SkippedFile, judge, list_folder

EXTRA_FOLDERS_ENV = "STYLESHELF_ADAPTER_PATH"
USER, BUNDLED, EXTRA, OUTSIDE = "user", "bundled", "extra", "outside"
_BUNDLED = object()  # "the repo's styles/ folder"


def _not_a_file(path: Path) -> str:
    """Why ``path`` (not a regular file) cannot be an adapter, in the words a person would use."""
    if path.is_dir():
        return f"{path} is a folder, not an adapter file."
    if path.is_symlink():
        return f"{path} is a broken link: its target {os.readlink(path)} does not exist."
    return f"{path}: no such file."


class DuplicateAdapterError(AdapterError):
    """The same weights (tensor hash) are already on the shelf; ``existing`` is that file."""

    def __init__(self, message: str, *, existing: Path) -> None:
        super().__init__(message)
        self.existing = existing


@dataclass
class LibraryEntry:
    """One file on the shelf: its info, or the reason it was refused (the card stays, with the reason)."""

    path: Path
    folder: str  # user | bundled | extra | outside
    info: AdapterInfo | None
    problem: str = ""
    duplicate_of: str = ""  # another entry with the same weights

    @property
    def ok(self) -> bool:
        return self.info is not None

    @property
    def name(self) -> str:
        return self.path.stem

    # The attributes the GUI reads from an AdapterInfo, so an entry can stand in for one.
    @property
    def title(self) -> str:
        return self.info.title if self.info else self.path.stem

    @property
    def trigger_phrase(self) -> str:
        return self.info.trigger_phrase if self.info else ""

    @property
    def family(self) -> str:
        return self.info.family if self.info else ""

    @property
    def thumbnail(self) -> bytes | None:
        return self.info.thumbnail if self.info else None

    @property
    def tensor_sha256(self) -> str:
        return self.info.tensor_sha256 if self.info else ""

    @property
    def autov2(self) -> str:
        return self.info.autov2 if self.info else ""

    @property
    def components(self) -> dict[str, int]:
        return self.info.components if self.info else {}

    @property
    def warnings(self) -> list[str]:
        out = list(self.info.warnings) if self.info else []
        if self.duplicate_of:
            out.append(f"same weights as {self.duplicate_of}")
        return out

    def to_json_dict(self) -> dict:
        d = {"name": self.name, "path": str(self.path), "folder": self.folder, "problem": self.problem}
        if self.info:
            d.update(self.info.to_json_dict())
        d["warnings"] = self.warnings
        return d


@dataclass
class ShelfScan:
    """What a scan found: the adapters, and every other ``.safetensors`` file with why it is not one."""

    entries: list[LibraryEntry]
    skipped: list[SkippedFile] = field(default_factory=list)
    stale_temps_removed: int = 0  # leftovers of killed writes, deleted during the scan


@dataclass
class ImportResult:
    source: Path
    status: str  # imported | duplicate | refused | failed (an unexpected error, reported, never fatal)
    path: Path | None = None  # the file on the shelf (new, or the existing duplicate)
    reason: str = ""
    info: AdapterInfo | None = field(default=None, repr=False)


class Library:
    def __init__(
        self,
        extra_folders: Iterable[str | os.PathLike[str]] = (),
        *,
        user_folder: str | os.PathLike[str] | None = None,
        bundled_folder: str | os.PathLike[str] | None | object = _BUNDLED,
    ) -> None:
        self._user_folder = Path(user_folder) if user_folder else None
        if bundled_folder is _BUNDLED:
            bundled_folder = BUNDLED_STYLES_DIR  # looked up now, not at import, so tests/tools can redirect it
        self.bundled_folder = Path(bundled_folder) if bundled_folder else None  # type: ignore[arg-type]
        self.extra_folders = [Path(f) for f in extra_folders]

    @classmethod
    def default(cls, extra_folders: Iterable[str | os.PathLike[str]] = ()) -> "Library":
        env = [p for p in os.environ.get(EXTRA_FOLDERS_ENV, "").split(os.pathsep) if p.strip()]
        return cls([*env, *extra_folders])

    @property
    def user_folder(self) -> Path:
        # Resolved on use, not at construction: STYLESHELF_HOME may change (tests, portable installs).
        return self._user_folder or (user_data_dir() / "adapters")

    def folders(self) -> list[tuple[str, Path]]:
        out = [(USER, self.user_folder)]
        if self.bundled_folder is not None:
            out.append((BUNDLED, self.bundled_folder))
        out += [(EXTRA, f) for f in self.extra_folders]
        return out

    def _survey(self) -> tuple[list[tuple[str, Path]], list[SkippedFile], int]:
        seen: set[Path] = set()
        files: list[tuple[str, Path]] = []
        skipped: list[SkippedFile] = []
        removed = 0
        for kind, folder in self.folders():
            if not folder.is_dir():
                continue
            contents = list_folder(folder)
            removed += contents.stale_temps_removed
            skipped += contents.skipped
            for path in contents.adapters:
                real = path.resolve()
                if real not in seen:
                    seen.add(real)
                    files.append((kind, path))
        return files, skipped, removed

    def files(self) -> list[tuple[str, Path]]:
        """Candidate adapter files (``.safetensors`` outside training-run folders), each folder's kind."""
        return self._survey()[0]

    def stack_files(self) -> list[tuple[str, Path]]:
        """House-style stack files (``*.stack.json``) in the shelf folders, listed beside the adapters."""
        from app.engine.shelf.stack_file import find_stack_files

        return find_stack_files(self.folders())

    def _entry(self, kind: str, path: Path, with_hashes: bool) -> LibraryEntry:
        info, problem = judge(path, with_hashes=with_hashes)
        return LibraryEntry(path, kind, info, problem=problem)

    def scan_report(self, *, with_hashes: bool = True) -> ShelfScan:
        """Every adapter file, and every other ``.safetensors`` file with its reason. Hashes are cached on disk.

        Each file is judged on its own: one unreadable or hostile file is skipped, never stops the scan.
        Stale temp files of interrupted writes (their process gone) are deleted on the way.
        """
        files, skipped, removed = self._survey()
        entries = []
        for kind, path in files:
            entry = self._entry(kind, path, with_hashes)
            if entry.ok:
                entries.append(entry)
            else:
                skipped.append(SkippedFile(path, entry.problem))
        by_hash: dict[str, LibraryEntry] = {}
        for e in entries:
            if e.tensor_sha256:
                first = by_hash.setdefault(e.tensor_sha256, e)
                if first is not e:
                    e.duplicate_of = str(first.path)
        skipped.sort(key=lambda s: str(s.path).casefold())
        return ShelfScan(entries, skipped, removed)

    def scan(self, *, with_hashes: bool = True) -> list[LibraryEntry]:
        """The adapters on the shelf (files that are not adapters: ``scan_report().skipped``)."""
        return self.scan_report(with_hashes=with_hashes).entries

    def kind_of(self, path: Path) -> str:
        real = path.resolve()
        for kind, folder in self.folders():
            if folder.is_dir() and real.is_relative_to(folder.resolve()):
                return kind
        return OUTSIDE

    def find(self, ref: str | os.PathLike[str]) -> LibraryEntry:
        """An adapter by path, file name (stem), title or hash prefix (AutoV2 / tensor hash, ≥ 6 hex)."""
        text = str(ref)
        path = Path(text).expanduser()
        if path.is_file():
            return self._entry(self.kind_of(path), path, True)
        if path.suffix or os.sep in text or (os.altsep and os.altsep in text) or path.is_dir():
            raise UserError(_not_a_file(path))
        key = text.casefold().removesuffix(".safetensors")
        entries = self.scan(with_hashes=False)
        for attr in ("name", "title"):
            hits = [e for e in entries if getattr(e, attr).casefold() == key]
            if len(hits) == 1:
                return self._entry(hits[0].folder, hits[0].path, True)
            if len(hits) > 1:
                where = ", ".join(str(h.path) for h in hits)
                raise UserError(f"{text!r} matches {len(hits)} adapters ({where}); give the path instead.")
        if len(key) >= 6 and all(c in "0123456789abcdef" for c in key):
            hits = [
                e for e in self.scan(with_hashes=True) if e.autov2.startswith(key) or e.tensor_sha256.startswith(key)
            ]
            if len(hits) == 1:
                return hits[0]
        raise UserError(f"No adapter named {text!r} on the shelf.", hint="See `styleshelf shelf list`.")

    def find_by_hash(self, tensor_sha256: str) -> LibraryEntry | None:
        for e in self.scan(with_hashes=True):
            if tensor_sha256 and e.tensor_sha256 == tensor_sha256:
                return e
        return None

    def resolve_stack(self, stack: Stack) -> Stack:
        """Point entries whose file moved (or came from a PNG/preset) at the shelf file with the same weights."""
        for entry in stack.entries:
            if entry.sha256 and not (entry.path and Path(entry.path).is_file()):
                found = self.find_by_hash(entry.sha256)
                entry.path = str(found.path) if found else ""
        return stack

    # --- import / export / remove ------------------------------------------------------------------

    def import_file(self, src: str | os.PathLike[str]) -> AdapterInfo:
        """Copy a validated adapter into the user's folder; DuplicateAdapterError when already present.

        The copy lands on the first free name (``style.safetensors``, ``style-2.safetensors``…), claimed
        atomically: two imports of different files with the same name at the same moment both land.
        """
        src = Path(src)
        if not src.is_file():
            raise AdapterError(_not_a_file(src))
        info, blob = read_adapter_snapshot(src)  # one read: what is checked is what is copied
        modules = lora_modules_from_bytes(info, blob)  # full check (NaN/Inf, pairs) before it lands on the shelf
        absurd = judge_strength(modules).absurd
        if absurd:
            raise AdapterError(f"{src.name}: {absurd}")
        twin = next(
            (e for e in self.scan() if e.tensor_sha256 == info.tensor_sha256 and e.path.resolve() != src.resolve()),
            None,
        )
        if twin is None and self.kind_of(src) != OUTSIDE:
            twin = LibraryEntry(src, self.kind_of(src), info)
        if twin is not None:
            raise DuplicateAdapterError(
                f"{src.name} is already on the shelf as {twin.path.name} (same weights).", existing=twin.path
            )
        folder = self.user_folder
        folder.mkdir(parents=True, exist_ok=True)
        stem = safe_stem(src.stem)
        names = (folder / (f"{stem}.safetensors" if n == 1 else f"{stem}-{n}.safetensors") for n in itertools.count(1))
        with atomic_new_file(names) as new:
            new.tmp.write_bytes(blob)
        dest = new.path
        assert dest is not None
        if dest.resolve().parent != folder.resolve():  # belt and braces: safe_stem already removed separators
            dest.unlink(missing_ok=True)
            raise AdapterError(f"{src.name}: refusing a file name that leaves the shelf folder.")
        copied = read_adapter_info(dest)
        if copied.tensor_sha256 != info.tensor_sha256:
            dest.unlink(missing_ok=True)
            raise AdapterError(f"{src.name}: the copy differs from the original (disk full or file changing?).")
        return self._adopt_sidecar(src, copied)

    @staticmethod
    def _adopt_sidecar(src: Path, copied: AdapterInfo) -> AdapterInfo:
        """A1111 keeps the activation text and description in ``<name>.json`` beside the file: bring over what
        the header lacks (the header's own values win), so the shelf card shows the trigger phrase too."""
        side = read_sidecar(src)
        trigger = side.get("activation text", "") if not copied.trigger_phrase else ""
        description = side.get("description", "") if not copied.description else ""
        if not (trigger or description):
            return copied
        return edit_metadata(copied.path, trigger_phrase=trigger or None, description=description or None)

    def import_files(self, sources: Iterable[str | os.PathLike[str]]) -> list[ImportResult]:
        """Import each file on its own: every file gets its outcome, whatever happens to the others."""
        results = []
        for src in sources:
            src = Path(src)
            try:
                info = self.import_file(src)
                results.append(ImportResult(src, "imported", Path(info.path), info=info))
            except DuplicateAdapterError as err:
                results.append(ImportResult(src, "duplicate", err.existing, reason=str(err)))
            except UserError as err:
                results.append(ImportResult(src, "refused", None, reason=str(err)))
            except Exception as err:  # noqa: BLE001 - a defect on one file must not lose the others' outcome
                results.append(ImportResult(src, "failed", None, reason=f"{src.name}: {type(err).__name__}: {err}"))
        return results

    def export(self, ref: str | os.PathLike[str], dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        entry = self.find(ref)
        if not entry.ok:
            raise AdapterError(f"{entry.path.name} cannot be exported: {entry.problem}")
        dest = Path(dest).expanduser()
        if dest.is_dir():
            dest = dest / entry.path.name
        elif dest.suffix == "":
            dest = dest.with_name(dest.name + ".safetensors")
        elif dest.suffix.lower() != ".safetensors":
            raise UserError(f"{dest.name}: adapters are exported as .safetensors files.")
        if dest.exists() and dest.resolve() == entry.path.resolve():
            raise UserError(f"{dest} is the adapter itself; choose another destination.")
        if dest.exists() and not overwrite:
            raise UserError(f"{dest} already exists.", hint="Choose another name or allow overwriting.")
        if not dest.parent.is_dir():
            raise UserError(f"Folder {dest.parent} does not exist.")
        with atomic_path(dest) as tmp:
            shutil.copyfile(entry.path, tmp)
        write_sidecar(dest, entry.info or read_adapter_info(dest))  # what A1111's LoRA card reads
        return dest

    def remove(self, ref: str | os.PathLike[str]) -> Path:
        entry = self.find(ref)
        if entry.folder != USER:
            raise UserError(
                f"{entry.path.name} is in the {entry.folder} folder {entry.path.parent}; "
                "StyleShelf only deletes adapters in your own shelf folder."
            )
        entry.path.unlink()
        return entry.path

    # --- presets -----------------------------------------------------------------------------------

    def list_presets(self) -> list[str]:
        return _presets.list_presets()

    def save_preset(self, name: str, stack: Stack) -> Path:
        return _presets.save_preset(name, stack)

    def load_preset(self, name: str) -> Stack:
        return self.resolve_stack(_presets.load_preset(name))

    def delete_preset(self, name: str) -> None:
        _presets.delete_preset(name)
