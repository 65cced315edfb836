"""Atomic file writes: a file is either the old one or the complete new one, even after kill -9.

Write to a temporary file in the same folder, fsync it, rename over the target, fsync the folder.

Temporary files are named ``.<target name>.<pid>-<host tag>-<random>.styleshelf-tmp``, so one left by a
killed process is recognisable and ``stale_temp_file`` can tell whether its writer is gone. They are
created with mode 0666 minus the umask (what any program's new file gets; ``mkstemp``'s 0600 made files
on a team share unreadable to teammates), and a replaced file keeps its own permissions.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import secrets
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

TEMP_SUFFIX = ".styleshelf-tmp"
# A writer on another machine cannot be asked whether it still runs: its temp file is only stale when it
# has not been written to for this long (a copy to a slow share still touches it continuously).
FOREIGN_TEMP_MAX_AGE_S = 24 * 3600
# Before temp files carried their writer's PID they were mkstemp names: ``.<target>.<8 random>.tmp``.
LEGACY_TEMP_MAX_AGE_S = 3600
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-z]+" + re.escape(TEMP_SUFFIX) + "$")
_LEGACY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


_HOST = _host_tag()


def temp_name(target_name: str) -> str:
    return f".{target_name}.{os.getpid()}-{_HOST}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _create_temp(target: Path) -> Path:
    """An empty new temp file next to ``target``, created exclusively with the umask's default mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = target.parent / temp_name(target.name)
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue


def _mode_for(target: Path, tmp: Path) -> tuple[int, int | None]:
    """(permission bits, group) the finished file gets: the replaced file's, else the new temp file's."""
    try:
        st = target.stat()
        return stat.S_IMODE(st.st_mode), st.st_gid
    except OSError:
        return stat.S_IMODE(tmp.stat().st_mode), None


def _finish(tmp: Path, mode: int, gid: int | None) -> None:
    # The body may have replaced the temp file (some writers delete and recreate): set mode on what is there.
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)
    if gid is not None and hasattr(os, "chown"):
        with contextlib.suppress(OSError):  # only possible for a group we belong to; best effort
            if tmp.stat().st_gid != gid:
                os.chown(tmp, -1, gid)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is fsynced and renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(target)
    try:
        mode, gid = _mode_for(target, tmp)
        yield tmp
        _finish(tmp, mode, gid)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class NewFile:
    tmp: Path  # write here inside the ``with`` block
    path: Path | None = None  # the name the file landed on, set when the block ends


@contextlib.contextmanager
def atomic_new_file(candidates: Iterable[str | os.PathLike[str]]) -> Iterator[NewFile]:
    """Like ``atomic_path``, but the file lands on the first of ``candidates`` (one folder) that is free.

    Checking that a name is free and then renaming onto it lets two writers pick the same name and one
    silently replace the other. Here the name is claimed atomically: a hard link fails if the name exists
    (then the next candidate is tried); where hard links are not supported, an exclusive create claims
    the name and the finished file is renamed over that placeholder.
    """
    names = iter(Path(c) for c in candidates)
    first = next(names)
    first.parent.mkdir(parents=True, exist_ok=True)
    new = NewFile(_create_temp(first))
    try:
        mode = stat.S_IMODE(new.tmp.stat().st_mode)  # a new file: the umask's default
        yield new
        _finish(new.tmp, mode, None)
        for candidate in itertools.chain([first], names):
            if _claim(new.tmp, candidate):
                new.path = candidate
                break
        else:
            raise FileExistsError(f"every candidate name for {first.name} is taken")
        _fsync_dir(first.parent)
    finally:
        new.tmp.unlink(missing_ok=True)


def _claim(tmp: Path, candidate: Path) -> bool:
    try:
        os.link(tmp, candidate)
        return True
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
    try:  # no hard links here (FAT, some network shares): claim with an exclusive create
        os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        return False
    os.replace(tmp, candidate)
    return True


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


# ------------------------------------------------------------------------------ leftovers of killed writers
def is_temp_file_name(name: str) -> bool:
    return bool(_TEMP.match(name) or _LEGACY.match(name))


def stale_temp_file(path: Path, *, now: float | None = None) -> bool:
    """Whether ``path`` is a temp file whose writer is gone (its process is dead, or it is long untouched)."""
    name = path.name
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    m = _TEMP.match(name)
    if m:
        if m["host"] == _HOST and _process_gone(int(m["pid"])):
            return True
        return age > FOREIGN_TEMP_MAX_AGE_S  # another machine's writer, or a PID reused since
    return bool(_LEGACY.match(name)) and age > LEGACY_TEMP_MAX_AGE_S


def remove_stale_temp_files(paths: Iterable[Path]) -> int:
    """Delete the stale temp files among ``paths`` (read-only folders are left alone); returns how many."""
    removed = 0
    for path in paths:
        if is_temp_file_name(path.name) and stale_temp_file(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    if sys.platform == "win32":
        return False  # os.kill would terminate it there; such files go by age
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists but is not ours (EPERM)
    return False


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
