"""The Train tab's session: the form, the dataset folder and an unfinished run survive a restart.

Stored as one JSON value in the app's QSettings store (``app.gui.settings``). A run that was cancelled (or
whose app was closed) is offered for Resume again only while its checkpoint is still on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine import facade
from app.gui import settings

if TYPE_CHECKING:  # pragma: no cover
    from app.gui.train_vm import TrainViewModel

KEY = "train/session"


def save(vm: TrainViewModel) -> None:
    state = {
        "values": {k: v for k, v in vm.values.items() if _storable(v)},
        "dataset": vm.dataset.folder,
        "auto_name": vm.auto_name,
        "resumable": vm.output_path if vm.last_checkpoint else "",
    }
    settings.set_value(KEY, json.dumps(state))


def restore(vm: TrainViewModel) -> None:
    """Put back what ``save`` kept; values of the wrong type (an older version's) are ignored."""
    try:
        state = json.loads(settings.get_str(KEY) or "{}")
    except ValueError:
        return
    if not isinstance(state, dict):
        return
    values = state.get("values") if isinstance(state.get("values"), dict) else {}
    for key, value in values.items():
        default = vm.defaults.get(key)
        if key in vm.values and _same_kind(value, default):
            vm.values[key] = float(value) if isinstance(default, float) else value
    vm.auto_name = str(state.get("auto_name") or "")
    vm.valueChanged.emit("")
    resumable = str(state.get("resumable") or "")
    point = facade.train_resume_point(resumable) if resumable else None
    if point is not None:
        vm.output_path, vm.last_checkpoint = resumable, point["path"]
        vm.last_step, vm.total_steps = point["step"], int(vm.values.get("steps") or point["total"])
        vm.progressChanged.emit(vm.last_step, vm.total_steps, None, None)
        if point["losses"]:
            vm.lossHistory.emit(list(point["losses"]))
        show_earlier_samples(vm, resumable, vm.last_step)
        vm.message.emit(f"The run of {Path(resumable).stem} stopped at step {vm.last_step}: Resume continues it.")
    dataset = str(state.get("dataset") or "")
    if dataset and Path(dataset).is_dir():
        vm.load_dataset(dataset)


def show_earlier_samples(vm: TrainViewModel, adapter_out: str, up_to_step: int) -> None:
    """The sample rounds a stopped run drew before ``up_to_step`` (``<adapter>.samples/step-*.png``, the step
    and prompt read from the PNG's text), so a resumed run's strip goes on where it was."""
    from PySide6.QtGui import QImageReader

    out = Path(adapter_out)
    rounds: dict[int, list[tuple[str, str]]] = {}
    for png in sorted(out.with_name(out.stem + ".samples").glob("step-*.png")):
        reader = QImageReader(str(png))
        try:
            step = int(reader.text("step") or png.name.split("-")[1])
        except (ValueError, IndexError):
            continue
        if step <= up_to_step:
            rounds.setdefault(step, []).append((str(png), reader.text("prompt")))
    for step in sorted(rounds):
        vm.samplesReady.emit(step, rounds[step])


def _storable(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (bool, int, float, str))
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    )


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return _storable(value)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))
