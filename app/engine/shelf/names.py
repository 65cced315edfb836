"""Safe file names for adapters and presets coming from users or other people's files."""

from __future__ import annotations

import re
import unicodedata

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_STEM = 100


def safe_stem(name: str, *, fallback: str = "adapter") -> str:
    """A file-name stem with no path separators, control characters, leading dots or reserved names.

    Letters of any script are kept (a Japanese style name stays readable); everything else that could
    be a path trick (``/``, ``\\``, ``..``, ``:``, NUL) becomes ``_`` or is stripped.
    """
    stem = unicodedata.normalize("NFKC", name)
    stem = re.sub(r"[^\w .()+,=@#&'!-]", "_", stem)  # \w is Unicode-aware: letters/digits/_ of any script
    stem = re.sub(r"\s+", " ", stem).strip(" ._")
    stem = stem[:MAX_STEM].rstrip(" .")
    if not stem:
        stem = fallback
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return stem
