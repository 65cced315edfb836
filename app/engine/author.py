"""The user's name as an author: written as ``modelspec.author`` into what they train, bake or edit.

Stored in ``user_config_dir()/author.json`` so the CLI, the app and the training child process (which
share ``STYLESHELF_HOME``) all write the same name. Empty means "not set": nothing is written then.
"""

from __future__ import annotations

import json

from app.engine.atomic import atomic_write_text
from app.engine.errors import UserError
from app.engine.paths import user_config_dir

MAX_AUTHOR = 100  # a name, not a biography: it shows on every card


def _file():
    return user_config_dir() / "author.json"


def get_author() -> str:
    """The saved author name, or "" when none was set (or the file is unreadable: never fatal)."""
    try:
        value = json.loads(_file().read_text(encoding="utf-8")).get("author", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return value.strip() if isinstance(value, str) else ""


def set_author(name: str) -> str:
    """Save the author name ("" clears it); returns the cleaned name."""
    clean = " ".join(str(name).split())  # one line: it goes into file headers and card labels
    if len(clean) > MAX_AUTHOR:
        raise UserError(f"The author name is too long ({len(clean)} characters; at most {MAX_AUTHOR}).")
    atomic_write_text(_file(), json.dumps({"author": clean}, ensure_ascii=False) + "\n")
    return clean


MODIFIED_KEY = "styleshelf.modified"  # when the metadata was last edited (ISO 8601, UTC)
MODIFIED_BY_KEY = "styleshelf.modified_by"  # who edited it (the author name of that user)


def stamp_edit(meta: dict[str, str]) -> None:
    """Record an edit in ``meta``: when and by whom; the author becomes the editor only if the file had none
    (the person who made a style stays its author when a teammate fixes a typo in its title)."""
    import datetime as _dt

    meta[MODIFIED_KEY] = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    who = get_author()
    if who:
        meta[MODIFIED_BY_KEY] = who
        if not meta.get("modelspec.author", "").strip():
            meta["modelspec.author"] = who
    else:
        meta.pop(MODIFIED_BY_KEY, None)  # an anonymous edit must not keep naming the previous editor


def last_change(meta: dict[str, str], author: str = "", date: str = "") -> tuple[str, str]:
    """(when, who) the file was last changed according to its metadata: the latest edit, else its creation."""
    if meta.get(MODIFIED_KEY):
        return meta[MODIFIED_KEY], meta.get(MODIFIED_BY_KEY, "")
    return date or meta.get("modelspec.date", ""), author or meta.get("modelspec.author", "")
