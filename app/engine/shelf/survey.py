"""Which files of an adapter folder are adapters: a cheap per-file decision, and why the others are not.

A shelf folder holds more than adapters: a training run's ``<name>.checkpoints/step-*/`` (a LoRA
``lora.safetensors`` plus ``optimizer.safetensors``: resume data, not styles), other tools' models, VAEs,
half-copied or damaged files, temp files of interrupted writes. The shelf lists adapters only; every
other ``.safetensors`` file becomes a ``SkippedFile`` with its reason, so a person can still see why a
file is not there. One bad file never hides the others: each is judged on its own, and no failure
while reading one stops the survey.

Headers are read once per file version: the judgement (info or reason) is kept in memory keyed by
path, size, mtime and inode, so a rescan of an unchanged folder parses nothing, and a file that is slow
to judge costs that only once.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from app.engine.adapters import AdapterInfo, read_adapter_info
from app.engine.atomic import is_temp_file_name, remove_stale_temp_files
from app.engine.errors import UserError
from app.engine.hashcache import cached_hashes

# Folders a training run writes beside its adapter (see app.engine.train): never styles.
RUN_FOLDER_SUFFIXES = (".checkpoints", ".samples")
_STEP_FOLDER = re.compile(r"^step-\d+$")
_MEMO_SIZE = 4096


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str  # one line

    def to_json_dict(self) -> dict:
        return {"path": str(self.path), "name": self.path.name, "reason": self.reason}


@dataclass
class FolderContents:
    adapters: list[Path]  # candidate adapter files, judged by their header next
    skipped: list[SkippedFile]  # decided from the path alone (checkpoint internals)
    stale_temps_removed: int = 0


def list_folder(folder: Path) -> FolderContents:
    """``.safetensors`` files under ``folder`` (hidden folders and files left out), stale temp files removed."""
    contents = FolderContents([], [])
    temps: list[Path] = []
    seen: set[tuple[int, int]] = set()  # folders by (device, inode): a symlink loop is walked once
    for root, dirs, files in os.walk(folder, onerror=lambda err: None, followlinks=True):
        here = Path(root)
        try:
            st = here.stat()
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=str.casefold)
        for name in sorted(files, key=str.casefold):
            path = here / name
            if is_temp_file_name(name):
                temps.append(path)
            elif name.startswith(".") or not name.lower().endswith(".safetensors"):
                continue
            elif _run_folder(path, folder):
                contents.skipped.append(SkippedFile(path, _run_reason(path, folder)))
            else:
                contents.adapters.append(path)
    contents.stale_temps_removed = remove_stale_temp_files(temps)
    return contents


def _run_folder(path: Path, root: Path) -> Path | None:
    """The training-run folder (``x.checkpoints``/``x.samples``) ``path`` lies in, below ``root``."""
    for parent in path.parents:
        if parent == root or len(parent.parts) < len(root.parts):
            break
        if parent.name.endswith(RUN_FOLDER_SUFFIXES):
            return parent
    if _STEP_FOLDER.match(path.parent.name) and (path.parent / "state.json").is_file():
        return path.parent  # a checkpoint folder moved out of its run folder
    return None


def _run_reason(path: Path, root: Path) -> str:
    run = _run_folder(path, root)
    assert run is not None
    if run.name.endswith(".samples"):
        return f"part of a training run's samples ({run.name}), not an adapter"
    style = run.name.removesuffix(".checkpoints")
    return f"a training checkpoint's internals ({run.name}/…), resume data for {style!r}, not an adapter"


_memo: OrderedDict[tuple, tuple[AdapterInfo | None, str]] = OrderedDict()
_memo_lock = threading.Lock()


def judge(path: Path, *, with_hashes: bool) -> tuple[AdapterInfo | None, str]:
    """(info, "") for an adapter, (None, one-line reason) for anything else; never raises for a bad file."""
    try:
        st = path.stat()
    except OSError as err:
        return None, _reason(path, err)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # ctime: `cp -p` keeps mtime
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
    if hit is not None:
        info, reason = hit
        if info is None or not with_hashes or info.tensor_sha256:
            return _with_cached_hashes(info), reason
    try:
        result: tuple[AdapterInfo | None, str] = (read_adapter_info(path, with_hashes=with_hashes), "")
    except Exception as err:  # noqa: BLE001 - one file's problem, whatever it is, must not hide the rest
        result = (None, _reason(path, err))
    with _memo_lock:
        _memo[key] = result
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return result


def _with_cached_hashes(info: AdapterInfo | None) -> AdapterInfo | None:
    """A remembered header-only info, with hashes computed since (by another scan or an import) filled in."""
    if info is None or info.tensor_sha256:
        return info
    hashes = cached_hashes(info.path)
    if hashes is None:
        return info
    from dataclasses import replace

    return replace(info, sha256=hashes[0], autov2=hashes[0][:10], tensor_sha256=hashes[1])


def _reason(path: Path, err: BaseException) -> str:
    if isinstance(err, UserError):
        text = str(err)
    elif path.is_symlink() and not path.exists():
        text = f"{path.name} is a broken link: its target {os.readlink(path)} does not exist."
    elif isinstance(err, IsADirectoryError) or path.is_dir():
        text = f"{path.name} is a folder, not an adapter file."
    elif isinstance(err, OSError):
        text = f"{path.name}: cannot be read ({err.strerror or err})."
    else:  # a defect in our reader: still one line, and the scan goes on
        text = f"{path.name}: could not be read ({type(err).__name__}: {err})."
    return " ".join(text.split())[:500]
