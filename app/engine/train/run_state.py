"""What a run left on disk, read without torch (the GUI asks it before a Resume): the checkpoints of a run,
the step each is at, and the loss history a checkpoint keeps so a resumed run's curve goes on where it was.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^step-(\d{6,})$")


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and (p / "state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: Path) -> int:
    """The step of a ``step-000200`` checkpoint folder, from its name."""
    match = _NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"not a checkpoint folder: {path}")
    return int(match.group(1))


def checkpoint_history(path: Path) -> list[float]:
    """The loss of every step up to the checkpoint (empty for checkpoints written before it was kept)."""
    try:
        state = json.loads((Path(path) / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return loss_history_of(state)


def loss_history_of(state: dict[str, Any]) -> list[float]:
    """The ``loss_history`` of a checkpoint's ``state.json``, numbers only."""
    history = state.get("loss_history")
    return [float(x) for x in history if isinstance(x, (int, float))] if isinstance(history, list) else []


def resume_point(folder: Path) -> dict[str, Any] | None:
    """What Resume would continue from, read cheaply (JSON only): step, planned total and the loss history."""
    found = latest_checkpoint(folder)
    if found is None:
        return None
    try:
        state = json.loads((found / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    total = state.get("total_steps") or (state.get("config") or {}).get("steps") or 0
    return {
        "step": checkpoint_step(found),
        "total": int(total),
        "path": str(found),
        "losses": checkpoint_history(found),
    }
