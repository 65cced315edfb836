"""CLI flags generated from a config dataclass's settings, so a new setting needs no CLI edit.

Each ``setting(...)`` field becomes ``--<flag>`` (its name with dashes unless ``flag=`` says otherwise; none
with ``cli=False``): a bool gets ``--flag`` and ``--no-flag``, a list is repeatable. Every flag defaults to
None ("not given"), so a preset or a TOML file keeps its value unless the flag is given. Values stay text
until ``setting_values`` parses them with ``configbase.parse_value``, the parser the form and TOML use too,
so a bad value is the same one-line error everywhere (and the range and choices are the config's own).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from app.engine.configbase import Setting, describe, parse_value


def add_setting_flags(
    parser: Any,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    required: Iterable[str] = (),
    advanced_title: str | None = None,
) -> list[Setting]:
    """Add a flag for each CLI setting of ``cls`` (``only``: just these, in the config's order); advanced
    settings go into their own help group when ``advanced_title`` is given. Returns the settings added."""
    chosen = set(only) if only is not None else None
    skipped, must = set(exclude), set(required)
    advanced_group = None
    added = []
    for s in describe(cls):
        if not s.cli or s.name in skipped or (chosen is not None and s.name not in chosen):
            continue
        target = parser
        if s.advanced and advanced_title:
            advanced_group = advanced_group or parser.add_argument_group(advanced_title)
            target = advanced_group
        _add_flag(target, s, required=s.name in must)
        added.append(s)
    return added


def _add_flag(parser: Any, s: Setting, *, required: bool) -> None:
    option = f"--{s.flag}"
    text = _help(s)
    if s.kind is bool:
        parser.add_argument(option, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=text)
    elif s.is_list:
        parser.add_argument(option, dest=s.name, action="append", default=None, metavar=s.metavar or "TEXT",
                            help=text + " (repeatable)")  # fmt: skip
    else:
        parser.add_argument(option, dest=s.name, default=None, required=required, metavar=_metavar(s), help=text)


def _metavar(s: Setting) -> str:
    if s.metavar:
        return s.metavar
    return {int: "N", float: "X"}.get(s.kind, "NAME" if s.choices else "TEXT")


def _help(s: Setting) -> str:
    text = s.help.rstrip(".")
    if s.choices:
        text += f". One of: {', '.join(map(str, s.choices))}"
    elif s.minimum is not None and s.maximum is not None:
        text += f" ({_number(s.minimum)}–{_number(s.maximum)})"
    if s.default not in (None, "", []) and s.kind is not bool:
        text += f". Default: {s.default}"
    return text.replace("%", "%%") + "."  # argparse formats help with %


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def setting_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The settings of ``cls`` given on the command line, parsed to their types (flags left out are absent)."""
    values: dict[str, Any] = {}
    for s in describe(cls):
        raw = getattr(args, s.name, None) if s.cli else None
        if raw is None:
            continue
        if isinstance(raw, bool) or s.is_list:
            values[s.name] = raw  # BooleanOptionalAction gives a bool; a repeated flag a list of texts
        else:
            values[s.name] = parse_value(raw, s, where=f"--{s.flag}")
    return values
