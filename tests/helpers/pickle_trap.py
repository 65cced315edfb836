"""A pickle that leaves a marker file when anything unpickles it: proof that a loader ran code from a pickle."""

from __future__ import annotations

import pickle
from pathlib import Path


class PickleTrap:
    """Unpickling this calls open(marker, "w"), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_trapped_pickle(path: Path, marker: Path) -> Path:
    """Write a pickle at `path` (any suffix) whose loading creates `marker`; check the trap itself works."""
    path.write_bytes(pickle.dumps({"state_dict": PickleTrap(marker)}))
    return path


def trap_fires(tmp_path: Path) -> bool:
    """Self-check: a real unpickle of the trap creates its marker (so a missing marker proves nothing ran)."""
    marker = tmp_path / "trap-self-check"
    pickle.loads(write_trapped_pickle(tmp_path / "self-check.pkl", marker).read_bytes())
    return marker.exists()
