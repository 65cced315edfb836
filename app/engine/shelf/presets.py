"""Stack presets: a named, ordered set of adapters with their toggles and weights, saved as JSON.

Stored as ``user_data_dir()/presets/NAME.json``. Entries keep both the path and the tensor hash, so a
preset still finds an adapter after it was renamed or moved (the caller resolves by hash).
"""

from __future__ import annotations

import json
from pathlib import Path

from app.engine.atomic import atomic_write_text
from app.engine.errors import UserError
from app.engine.paths import user_data_dir
from app.engine.shelf.names import safe_stem
from app.engine.shelf.stack import Stack

FORMAT_VERSION = 1


def presets_dir() -> Path:
    return user_data_dir() / "presets"


def preset_path(name: str) -> Path:
    if not name.strip():
        raise UserError("A preset needs a name.")
    return presets_dir() / f"{safe_stem(name, fallback='preset')}.json"


def save_preset(name: str, stack: Stack) -> Path:
    path = preset_path(name)
    doc = {"format": "styleshelf-stack", "version": FORMAT_VERSION, "name": name.strip(), **stack.to_dict()}
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def load_preset(name: str) -> Stack:
    path = preset_path(name)
    if not path.is_file():
        known = ", ".join(list_presets()) or "none saved yet"
        raise UserError(f"No preset named {name!r}.", hint=f"Presets: {known}.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("entries", []), list):
            raise ValueError("not a stack preset")
        return Stack.from_dict(doc)
    except (ValueError, TypeError) as err:
        raise UserError(f"Preset {name!r} is damaged ({err}); delete it and save it again.") from None


def list_presets() -> list[str]:
    """Preset names (as the user typed them), sorted case-insensitively."""
    names = []
    for path in presets_dir().glob("*.json") if presets_dir().is_dir() else []:
        try:
            names.append(str(json.loads(path.read_text(encoding="utf-8")).get("name") or path.stem))
        except (OSError, ValueError, AttributeError):
            names.append(path.stem)  # listed so the user can see and delete it
    return sorted(names, key=str.casefold)


def delete_preset(name: str) -> None:
    path = preset_path(name)
    if not path.is_file():
        raise UserError(f"No preset named {name!r}.")
    path.unlink()
