"""Safe file names for adapters, presets and stacks coming from users or other people's files.

The one sanitiser: every file name made from a user's text (a style name, an imported file's stem, a preset
or stack title) goes through ``safe_stem``.
"""

from __future__ import annotations

import re
import unicodedata

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_STEM = 100


def safe_stem(name: str, *, fallback: str = "adapter", space: str = " ") -> str:
    """A file-name stem with no path separators, control characters, leading dots or reserved names.

    Letters of any script are kept (a Japanese style name stays readable); everything else that could
    be a path trick (``/``, ``\\``, ``..``, ``:``, NUL) becomes ``_`` or is stripped. Runs of white space
    become one ``space`` (``"-"`` for names that travel in command lines). At most ``MAX_STEM`` characters.
    """
    stem = unicodedata.normalize("NFKC", name)
    stem = re.sub(r"[^\w .()+,=@#&'!-]", "_", stem)  # \w is Unicode-aware: letters/digits/_ of any script
    stem = re.sub(r"\s+", " ", stem).strip(" ._")
    stem = stem[:MAX_STEM].rstrip(" .")
    if not stem:
        stem = fallback
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem.replace(" ", space)


def adapter_file_name(style_name: str) -> str:
    """The file a newly trained style called ``style_name`` gets, from the GUI and the CLI alike.

    ``"Ink test"`` → ``Ink-test.safetensors``: no spaces, so the path can be pasted into a command line."""
    return f"{safe_stem(style_name, fallback='style', space='-')}.safetensors"
