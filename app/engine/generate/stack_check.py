"""Before an image: leave out stack entries whose file vanished, and say when a file changed under a stack.

On a shared folder files disappear and change while the app runs. A stack that still names a vanished
file must not break generation: that entry is left out (disabled in the image's record, so the PNG says
truthfully what was used) with a warning. An entry whose recorded tensor hash differs from the file now
at its path is used as the file is now, with a warning: the weights are never a mix, because adapters
are loaded under their tensor hash (``AdapterIdentity.adapter_name``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.engine.errors import UserError
from app.engine.events import EventCallback, Log, ignore_event
from app.engine.shelf.stack import StackEntry


def _is_active(entry: StackEntry) -> bool:
    te = entry.weight if entry.text_encoder_weight is None else entry.text_encoder_weight
    return bool(entry.enabled) and (entry.weight != 0 or te != 0)


def usable_stack(stack: list[StackEntry], on_event: EventCallback = ignore_event) -> list[StackEntry]:
    """``stack`` with vanished files switched off (each with a warning event); other entries unchanged."""
    from app.engine.generate.identity import adapter_identity

    out = []
    for entry in stack:
        if not _is_active(entry):
            out.append(entry)
            continue
        name = entry.name or (Path(entry.path).stem if entry.path else "an adapter")
        if not entry.path or not Path(entry.path).is_file():
            where = f" ({entry.path})" if entry.path else ""
            on_event(Log(message=f"{name}: the file is gone{where}; left out of this image.", level="warning"))
            out.append(replace(entry, enabled=False))
            continue
        if entry.sha256:
            try:
                now = adapter_identity(entry.path).tensor_sha256
            except UserError:
                now = ""  # a broken file is refused with its own reason when it is loaded
            if now and now != entry.sha256:
                on_event(Log(message=f"{name}: the file changed since this stack was set (other weights); "
                                     "using it as it is now.", level="warning"))  # fmt: skip
        out.append(entry)
    return out
