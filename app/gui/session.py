"""What the artist was doing, brought back after a restart: the Generate form, the seed lock, the shelf's
stack (toggles, strengths, order) and the recent prompts.

Stored as JSON values in the app's QSettings store (see app.gui.settings), so tests isolate it the same way.
Unknown or damaged values are ignored: a bad session file must never stop the app from starting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from app.gui import settings as prefs

GENERATE_KEY = "session/generate"
SHELF_KEY = "session/shelf"
HISTORY_KEY = "session/prompt_history"
HISTORY_LIMIT = 20

# The Generate form's hand-placed fields that come back and the kinds of value each accepts (not out_dir/
# file_stem: those are not on the form). The "More settings" built from GenerateConfig come back too: the view
# model names them (``more``), and each saved value is checked against its setting's type, range and choices.
_NUMBER, _WHOLE, _SIZE = (int, float), (int,), (int, type(None))
GENERATE_FIELDS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "negative": (str,),
    "seed": _SIZE,
    "steps": _WHOLE,
    "guidance": _NUMBER,
    "width": _SIZE,
    "height": _SIZE,
    "sampler": (str,),
    "batch_count": _WHOLE,
    "insert_triggers": (bool,),
    "seed_locked": (bool,),
}


def _load(key: str, kind: type) -> Any:
    try:
        value = json.loads(prefs.get_str(key) or "null")
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def save_generate(params: Any, seed_locked: bool, more: Iterable[str] = ()) -> None:
    data = {name: getattr(params, name) for name in (*GENERATE_FIELDS, *more) if name != "seed_locked"}
    data["seed_locked"] = bool(seed_locked)
    prefs.set_value(GENERATE_KEY, json.dumps(data))


def load_generate(more: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The saved form values of the right kind ({} when none): a damaged file must not break generation.

    ``more``: the "More settings" records by name; their saved values come back when legal.
    """
    from app.engine import facade

    more = more or {}
    out = {}
    for name, value in _load(GENERATE_KEY, dict).items():
        kinds = GENERATE_FIELDS.get(name)
        if kinds and isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            out[name] = value
        elif not kinds and name in more:
            try:
                out[name] = facade.checked_setting_value(value, more[name])
            except facade.UserError:
                continue
    return out


def save_shelf(entries: list) -> None:
    prefs.set_value(SHELF_KEY, json.dumps([e.to_dict() for e in entries]))


def load_shelf() -> list:
    from app.engine.facade import StackEntry

    out = []
    for data in _load(SHELF_KEY, list):
        try:
            out.append(StackEntry.from_dict(data))
        except (TypeError, AttributeError):
            continue
    return out


def load_history() -> list[str]:
    return [str(p) for p in _load(HISTORY_KEY, list) if isinstance(p, str) and p.strip()][:HISTORY_LIMIT]


def remember_prompt(prompt: str) -> list[str]:
    """Put ``prompt`` first in the recent prompts (once), store, and return the list."""
    prompt = prompt.strip()
    history = load_history()
    if prompt:
        history = [prompt, *[p for p in history if p != prompt]][:HISTORY_LIMIT]
        prefs.set_value(HISTORY_KEY, json.dumps(history))
    return history
