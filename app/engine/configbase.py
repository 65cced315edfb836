"""Typed dataclass configs whose fields carry help text and ranges, so the GUI builds forms from them.

    @dataclass
    class TrainConfig:
        steps: int = setting(500, "Optimisation steps", minimum=1, maximum=100_000)

``describe(cls)`` lists the fields as ``Setting`` records (name, type, default, help, range, choices,
advanced); ``validate(obj)`` checks ranges and choices and raises a UserError naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from app.engine.errors import UserError


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    advanced: bool = False,
    label: str | None = None,
) -> Any:
    """A dataclass field with GUI/CLI metadata. Mutable defaults (lists) are copied per instance."""
    meta = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "advanced": advanced,
        "label": label,
    }
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    name: str
    type: Any
    default: Any
    help: str
    label: str
    minimum: float | None
    maximum: float | None
    choices: tuple[Any, ...] | None
    advanced: bool


def describe(cls: type) -> list[Setting]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(
            Setting(
                name=f.name,
                type=hints[f.name],
                default=default,
                help=meta["help"],
                label=meta.get("label") or f.name.replace("_", " ").capitalize(),
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                choices=meta.get("choices"),
                advanced=bool(meta.get("advanced")),
            )
        )
    return out


def validate(obj: Any) -> None:
    """Raise UserError for the first field outside its range or choices."""
    for s in describe(type(obj)):
        value = getattr(obj, s.name)
        if value is None:
            continue
        if s.choices is not None and value not in s.choices:
            raise UserError(f"{s.label}: {value!r} is not one of {', '.join(map(str, s.choices))}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if s.minimum is not None and value < s.minimum:
                raise UserError(f"{s.label} must be at least {s.minimum} (got {value}).")
            if s.maximum is not None and value > s.maximum:
                raise UserError(f"{s.label} must be at most {s.maximum} (got {value}).")


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from a mapping (a TOML file), refusing unknown keys with their names."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"Unknown setting(s): {', '.join(unknown)}.", hint=f"Known: {', '.join(sorted(names))}.")
    obj = cls(**data)
    validate(obj)
    return obj
