"""Live shelf folders: notice adapter and stack files that appear, change or vanish while the app runs.

Studios share styles through network drives and synced folders (Dropbox, Drive, Syncthing), where
files change under a running app. Two sources of news, because neither is enough alone:

- ``QFileSystemWatcher`` on every folder (and subfolder): fast, but on network drives change events
  often never arrive;
- a periodic re-scan: ``os.scandir`` + ``stat`` only (size, mtime, inode), so it costs a directory
  listing, never a file read; nothing is re-hashed that did not change.

A file is reported only once its signature (size, mtime, inode) is the same on two scans in a row at
least ``settle_ms`` apart, so a half-written file (a sync in progress) is not read until it stops
changing. Scans run on a pool thread: a slow network share never freezes the window.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from app.gui.background import run_in_background

Signature = tuple[int, int, int]  # size, mtime_ns, inode
WATCHED_SUFFIXES = (".safetensors", ".stack.json")
# A training run's checkpoints and samples beside its adapter: rewritten every few hundred steps, never styles.
SKIPPED_DIR_SUFFIXES = (".checkpoints", ".samples")
MAX_WATCHED_DIRS = 512  # OS limits on watches (inotify); the re-scan still covers deeper trees


def scan_folders(folders: list[str]) -> tuple[dict[str, Signature], list[str]]:
    """(file → signature, sub-folders) for the watched file kinds under ``folders``; hidden names skipped
    (atomic-write temporaries and sync tools' partial files start with a dot), and training runs' folders."""
    files: dict[str, Signature] = {}
    dirs: list[str] = []
    stack = [str(f) for f in folders]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue  # not there (yet), unmounted or unreadable: the next scan tries again
        dirs.append(folder)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    if not entry.name.lower().endswith(SKIPPED_DIR_SUFFIXES):
                        stack.append(str(Path(folder) / entry.name))
                elif entry.name.lower().endswith(WATCHED_SUFFIXES) and entry.is_file():
                    st = entry.stat()
                    files[str(Path(folder) / entry.name)] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                continue  # vanished between listing and stat
    return files, dirs


class FolderWatcher(QObject):
    """Emits ``filesChanged(added, changed, removed)`` (paths) for settled changes in the watched folders."""

    filesChanged = Signal(list, list, list)

    def __init__(self, parent: QObject | None = None, *, poll_ms: int = 3000, settle_ms: int = 700) -> None:
        super().__init__(parent)
        self.folders: list[str] = []
        self.settle_ms = settle_ms
        self._known: dict[str, Signature] = {}  # the state last reported (or the baseline)
        # Seen changing, with when it was first seen so; reported when a scan settle_ms later sees the same.
        self._pending: dict[str, tuple[Signature, float]] = {}
        self._generation = 0  # bumps when the folder list changes: results of older scans are dropped
        self._scanning = False
        self._again = False
        self._fs = QFileSystemWatcher(self)
        self._fs.directoryChanged.connect(lambda _path: self._soon())
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self.scan_now)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(settle_ms)
        self._settle.timeout.connect(self.scan_now)

    def set_folders(self, folders: list[str]) -> None:
        """Watch ``folders`` from now on; what is in them now is the baseline (the caller lists it itself)."""
        self.folders = list(dict.fromkeys(str(f) for f in folders))
        self._generation += 1
        self._known, dirs = scan_folders(self.folders)
        self._pending.clear()
        self._watch_dirs(dirs)

    def start(self) -> None:
        if not self._poll.isActive():
            self._poll.start()

    def stop(self) -> None:
        self._poll.stop()
        self._settle.stop()

    @property
    def active(self) -> bool:
        return self._poll.isActive()

    def _soon(self) -> None:
        if self.active and not self._settle.isActive():
            self._settle.start()

    def scan_now(self) -> None:
        """Re-scan on a pool thread; one scan at a time (a request during a scan runs right after it)."""
        if self._scanning:
            self._again = True
            return
        self._scanning = True
        folders, generation = list(self.folders), self._generation
        run_in_background(lambda: scan_folders(folders), lambda r: self._scanned(r, generation), self._scan_failed)

    def _scan_failed(self, _exc: BaseException) -> None:
        self._scanning = False  # an unreadable share is retried on the next poll

    def _scanned(self, result: tuple[dict[str, Signature], list[str]], generation: int) -> None:
        self._scanning = False
        if generation == self._generation:
            self._apply(*result)
        if self._again:
            self._again = False
            self.scan_now()

    def _apply(self, snapshot: dict[str, Signature], dirs: list[str]) -> None:
        added, changed = [], []
        pending: dict[str, tuple[Signature, float]] = {}
        now = time.monotonic()
        for path, sig in snapshot.items():
            if self._known.get(path) == sig:
                continue
            seen = self._pending.get(path)
            if seen is not None and seen[0] == sig and now - seen[1] >= self.settle_ms / 1000:
                (changed if path in self._known else added).append(path)  # unchanged for settle_ms: settled
                self._known[path] = sig
            elif seen is not None and seen[0] == sig:
                pending[path] = seen  # same, but not for long enough yet
            else:
                pending[path] = (sig, now)  # new or still being written: look again after settle_ms
        removed = [p for p in self._known if p not in snapshot]
        for path in removed:
            del self._known[path]
        self._pending = pending
        if pending and self.active:
            self._soon()
        self._watch_dirs(dirs)
        if added or changed or removed:
            self.filesChanged.emit(sorted(added), sorted(changed), sorted(removed))

    def _watch_dirs(self, dirs: list[str]) -> None:
        # Watch the folders themselves even when they do not exist yet is impossible; the re-scan covers that.
        wanted = set(dirs[:MAX_WATCHED_DIRS])
        current = set(self._fs.directories())
        if current - wanted:
            self._fs.removePaths(sorted(current - wanted))
        if wanted - current:
            self._fs.addPaths(sorted(wanted - current))
