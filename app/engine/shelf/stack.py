"""A stack: the ordered adapters applied to generation, each toggled and weighted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StackEntry:
    """One adapter on the stack. ``weight`` is any float in the engine (the UI offers −2…2)."""

    path: str
    enabled: bool = True
    weight: float = 1.0
    # A separate strength for the adapter's text-encoder part; None = same as ``weight``.
    text_encoder_weight: float | None = None
    name: str = ""  # display name; the loaded-adapter name is derived from the file hash, not this
    sha256: str = ""  # tensor-only hash, so a stack restored from a PNG finds the file again after a rename

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StackEntry":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Stack:
    entries: list[StackEntry] = field(default_factory=list)

    def active(self) -> list[StackEntry]:
        """Entries that change the image: enabled with a non-zero weight."""
        return [e for e in self.entries if e.enabled and (e.weight != 0 or (e.text_encoder_weight or 0) != 0)]

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Stack":
        return cls([StackEntry.from_dict(e) for e in data.get("entries", [])])
