"""Typed dataclass configs whose fields carry everything about a setting, defined once.

    @dataclass
    class TrainConfig(Settings):
        steps: int = setting(500, "Optimisation steps", minimum=1, maximum=100_000)

From that one line the CLI gets a ``--steps`` flag (``app/commands/setting_flags.py``), the GUI a spin box
with the range and the help as its tooltip, and a TOML run file a key. ``describe(cls)`` lists the fields as
``Setting`` records; ``parse_value`` turns typed text (a flag, a form field, a TOML string) into the field's
type; ``validate(obj)`` checks types, ranges and choices and raises a UserError naming the setting. A
``Settings`` subclass validates itself when it is built (``__post_init__``), so an invalid one never exists.
"""

from __future__ import annotations

import dataclasses
import typing
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
    step: float | None = None,
    flag: str | None = None,
    cli: bool = True,
    metavar: str | None = None,
    same_on_resume: bool = False,
    form: bool = True,
) -> Any:
    """A dataclass field with its GUI/CLI metadata. Mutable defaults (lists) are copied per instance.

    ``step``: the form's spin-box step. ``flag``: the CLI flag's name when it is not the field's (``lr`` for
    ``learning_rate``; a bool gets ``--flag`` and ``--no-flag``); ``cli=False``: no flag. ``same_on_resume``:
    a checkpoint can only continue a run whose value of this setting is unchanged. ``form=False``: never a
    widget of a form built from the config (a file path or text the tab places itself, an output name).
    """
    meta = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "advanced": advanced,
        "label": label,
        "step": step,
        "flag": flag,
        "cli": cli,
        "metavar": metavar,
        "same_on_resume": same_on_resume,
        "form": form,
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
    step: float | None = None
    flag: str = ""  # the CLI flag without its dashes
    cli: bool = True
    metavar: str | None = None
    same_on_resume: bool = False
    form: bool = True  # False: never built into a form

    @property
    def kind(self) -> Any:
        """The type without ``| None`` (``int`` for ``int | None``)."""
        return _base_type(self.type)[0]

    @property
    def optional(self) -> bool:
        """Whether None ("auto", "not set") is a legal value."""
        return _base_type(self.type)[1]

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.kind) is list


def _base_type(tp: Any) -> tuple[Any, bool]:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and len(args) < len(typing.get_args(tp)):
        return args[0], True
    return tp, False


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
                step=meta.get("step"),
                flag=meta.get("flag") or f.name.replace("_", "-"),
                cli=meta.get("cli", True),
                metavar=meta.get("metavar"),
                same_on_resume=bool(meta.get("same_on_resume")),
                form=meta.get("form", True),
            )
        )
    return out


def settings_of(cls: type) -> dict[str, Setting]:
    return {s.name: s for s in describe(cls)}


def same_on_resume(cls: type) -> tuple[str, ...]:
    """Names of the settings a checkpoint's run must share to be continued (``same_on_resume=True``)."""
    return tuple(s.name for s in describe(cls) if s.same_on_resume)


# ------------------------------------------------------------------------------------ text → value

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_value(text: str, s: Setting, *, where: str = "") -> Any:
    """Typed text → the setting's type; the one parser of CLI flags, form fields and TOML strings.

    Empty text is None for an optional setting; a list is written ``a | b | c``. ``where`` names the
    source in the error (``--steps``); by default the setting's label.
    """
    raw = str(text).strip()
    kind = s.kind
    if s.optional and not raw:
        return None
    try:
        if kind is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(raw)
            return raw.lower() in _TRUE
        if kind is int:
            try:
                return int(raw)
            except ValueError:
                number = float(raw)  # "512.0", "1e3"
                if not number.is_integer():
                    raise
                return int(number)
        if kind is float:
            return float(raw)
    except ValueError:
        expected = {bool: "yes or no", int: "a whole number", float: "a number"}[kind]
        raise UserError(f"{where or s.label}: {raw!r} is not {expected}.") from None
    if s.is_list:
        return [part.strip() for part in raw.split("|") if part.strip()]
    return raw


def coerce(value: Any, s: Setting) -> Any:
    """A value from a TOML file or a session as the setting's type: text is parsed, a whole float is an int."""
    if isinstance(value, str) and s.kind is not str:
        return parse_value(value, s)
    if s.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if s.kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ------------------------------------------------------------------------------------ checking


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _type_ok(value: Any, s: Setting) -> bool:
    kind = s.kind
    if s.is_list:
        return isinstance(value, list)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    return True


def check_value(value: Any, s: Setting) -> None:
    """Raise UserError when ``value`` is not a legal value of setting ``s`` (type, choices, range)."""
    if value is None:
        if s.optional:
            return
        raise UserError(f"{s.label} ({s.name}) needs a value.")
    if not _type_ok(value, s):
        expected = {bool: "yes or no", int: "a whole number", float: "a number", str: "text"}.get(s.kind, "a list")
        raise UserError(f"{s.label} ({s.name}) must be {expected} (got {value!r}).")
    if s.choices is not None and value not in s.choices:
        raise UserError(f"{s.label} ({s.name}): {value!r} is not one of {', '.join(map(str, s.choices))}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low = s.minimum is not None and value < s.minimum
        high = s.maximum is not None and value > s.maximum
        if low or high:
            if s.minimum is not None and s.maximum is not None:
                allowed = f"from {_number(s.minimum)} to {_number(s.maximum)}"
            else:
                allowed = f"at least {_number(s.minimum)}" if low else f"at most {_number(s.maximum)}"  # type: ignore[arg-type]
            raise UserError(f"{s.label} ({s.name}) must be {allowed} (got {value}).")


def validate(obj: Any) -> None:
    """Raise UserError for the first setting of ``obj`` outside its type, range or choices."""
    for s in describe(type(obj)):
        check_value(getattr(obj, s.name), s)


class Settings:
    """Base of the setting dataclasses: a config is checked when it is built, so an invalid one cannot exist.

    (Attributes set later, as a form edits a config in place, are checked again where the config is used.)
    """

    def __post_init__(self) -> None:
        validate(self)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from a mapping (a TOML file), refusing unknown keys with their names."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"Unknown setting(s): {', '.join(unknown)}.", hint=f"Known: {', '.join(sorted(names))}.")
    known = settings_of(cls)
    obj = cls(**{k: coerce(v, known[k]) if k in known else v for k, v in data.items()})
    if not isinstance(obj, Settings):
        validate(obj)
    return obj
