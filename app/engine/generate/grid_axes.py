"""The axes of a comparison grid, parsed from the text people type (one parser for the CLI and the app).

    strength:stripes=0,0.5,1        strength:stripes=0-1 (+0.25)     strength:stripes=0-1 [5]
    seed=1,2,3    seed=10-13    steps=10-30 (+10)    cfg=3,7,11    sampler=Euler,DPM++ 2M
    style=stripes,pastel,none       (each style alone on top of the fixed stack; ``none`` = without)
    style:ink=stripes,pastel        (the stack with its ``ink`` entry swapped for each value)
    prompt_sr=cat,dog,fox           (AUTOMATIC1111's Prompt S/R: the first value is replaced by each)
    prompt=a cat,"a dog, sitting"   (whole prompts; values are CSV, quote a value that has a comma)
    checkpoint:stripes=200,400,final,base   (``all`` = every kept checkpoint and the final adapter)

Ranges are written as AUTOMATIC1111's X/Y/Z plot writes them: ``A-B`` (step 1), ``A-B (+S)`` / ``A-B (-S)``,
``A-B [N]`` (N evenly spaced values); they mix with single values (``1-3, 7``). Nothing here touches files:
style and checkpoint names are resolved when the grid is planned (``grid.py``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

from app.engine.errors import UserError
from app.engine.generate.samplers import SAMPLER_NAMES, canonical_sampler

MAX_VALUES = 100  # one axis; a typo like ``0-1000`` should not start a day-long run

# kind -> (A1111-style type label, value type); the label goes into the grid PNG's "X Type"
_KINDS: dict[str, tuple[str, type]] = {
    "strength": ("Strength", float),
    "style": ("Style", str),
    "checkpoint": ("Checkpoint", str),
    "seed": ("Seed", int),
    "prompt_sr": ("Prompt S/R", str),
    "prompt": ("Prompt", str),
    "sampler": ("Sampler", str),
    "steps": ("Steps", int),
    "cfg": ("CFG Scale", float),
}
_ALIASES = {
    "weight": "strength", "lora": "strength", "styles": "style", "seeds": "seed", "prompt s/r": "prompt_sr",
    "prompt-sr": "prompt_sr", "promptsr": "prompt_sr", "sr": "prompt_sr", "prompts": "prompt", "samplers": "sampler",
    "step": "steps", "cfg scale": "cfg", "cfg_scale": "cfg", "guidance": "cfg", "checkpoints": "checkpoint",
}  # fmt: skip
AXIS_KINDS = tuple(_KINDS)
TARGETED = ("strength", "style", "checkpoint")  # kinds that may name a style after a colon
NO_STYLE = ("none", "base", "off", "-")  # a style/checkpoint value meaning "without this style"
_RANGES: dict[str, tuple[float, float]] = {"seed": (-1, 2**32 - 1), "steps": (1, 200), "cfg": (0.0, 30.0)}

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*(?:\(\s*({_NUM})\s*\)|\[\s*(\d+)\s*\])?\s*$")


@dataclass(frozen=True)
class Axis:
    kind: str  # one of AXIS_KINDS
    target: str  # the style a strength/style/checkpoint axis acts on; "" when none was named
    values: tuple  # floats, ints or strings by kind
    raw: str  # the values as typed (A1111's "X Values")

    @property
    def spec(self) -> str:
        return f"{self.kind}{':' + self.target if self.target else ''}={self.raw}"

    @property
    def type_label(self) -> str:
        label = _KINDS[self.kind][0]
        return f"{label}: {self.target}" if self.target else label

    def value_labels(self) -> list[str]:
        """Short texts drawn on the grid for each value."""
        out = []
        for v in self.values:
            text = format_value(v)
            if self.kind == "strength":
                out.append(f"{self.target or 'strength'}: {text}")
            elif self.kind in ("seed", "steps", "cfg", "sampler"):
                out.append(f"{self.type_label}: {text}")
            elif self.kind == "checkpoint":
                out.append(f"step {int(text)}" if text.isdigit() else text)
            else:
                out.append(text)
        return out


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_axis(text: str) -> Axis:
    """``kind[:style]=values`` → Axis; UserError with the reason for anything else."""
    text = (text or "").strip()
    head, sep, raw = text.partition("=")
    if not sep:
        raise UserError(f'Axis {text!r} needs \'=\' and values, e.g. "seed=1,2,3" or "strength:stripes=0,0.5,1".')
    name, _, target = head.partition(":")
    name = name.strip().lower()
    kind = _ALIASES.get(name, name)
    target = target.strip()
    if kind not in _KINDS:
        raise UserError(f"Unknown axis {name!r} in {text!r}.", hint=f"Use one of: {', '.join(AXIS_KINDS)}.")
    if target and kind not in TARGETED:
        raise UserError(f'A {kind} axis takes no style name (got {head.strip()!r}); write "{kind}=…".')
    raw = raw.strip()
    items = _split_values(raw, text)
    values = _typed_values(kind, items, text)
    if len(values) > MAX_VALUES:
        raise UserError(f"Axis {text!r} has {len(values)} values; at most {MAX_VALUES} per axis.")
    return Axis(kind=kind, target=target, values=tuple(values), raw=raw)


def parse_axes(*texts: str) -> list[Axis]:
    """The non-empty ones of X, Y, Z, in that order."""
    return [parse_axis(t) for t in texts if t and t.strip()]


def _split_values(raw: str, text: str) -> list[str]:
    # CSV like A1111 (skipinitialspace): a quoted value may hold commas.
    try:
        rows = list(csv.reader(io.StringIO(raw), skipinitialspace=True))
    except csv.Error as err:
        raise UserError(f"Axis {text!r}: cannot split its values ({err}).") from None
    items = [v.strip() for row in rows for v in row if v.strip()]
    if not items:
        raise UserError(f"Axis {text!r} has no values.")
    return items


def _typed_values(kind: str, items: list[str], text: str) -> list:
    value_type = _KINDS[kind][1]
    if kind == "sampler":
        return [_sampler(item, text) for item in items]
    if value_type is str:
        return items
    values: list = []
    for item in items:
        values.extend(_numbers(item, value_type, text))
    low, high = _RANGES.get(kind, (-math.inf, math.inf))
    for v in values:
        if not low <= v <= high:
            raise UserError(f"Axis {text!r}: {format_value(v)} is outside {format_value(low)}…{format_value(high)}.")
    return values


def _numbers(item: str, value_type: type, text: str) -> list:
    match = _RANGE.match(item)
    if match is None:
        try:
            number = float(item)
        except ValueError:
            raise UserError(
                f"Axis {text!r}: {item!r} is not a number or a range like 0-1 (+0.25) or 0-1 [5]."
            ) from None
        if not math.isfinite(number):
            raise UserError(f"Axis {text!r}: {item!r} is not a finite number.")
        return [_as(value_type, number, item, text)]
    start, end = float(match.group(1)), float(match.group(2))
    if match.group(4) is not None:  # [N]: N values evenly spaced, both ends included
        count = int(match.group(4))
        if count < 1:
            raise UserError(f"Axis {text!r}: {item!r} asks for no values.")
        if count == 1:
            return [_as(value_type, start, item, text, rounding=True)]
        span = (end - start) / (count - 1)
        return [_as(value_type, start + i * span, item, text, rounding=True) for i in range(count)]
    step = float(match.group(3)) if match.group(3) is not None else (1.0 if end >= start else -1.0)
    if step == 0 or (end - start) * step < 0:
        raise UserError(f"Axis {text!r}: the step in {item!r} never reaches {match.group(2)}.")
    count = int(math.floor((end - start) / step + 1e-9)) + 1
    if count > MAX_VALUES:
        raise UserError(f"Axis {text!r}: {item!r} makes {count} values; at most {MAX_VALUES} per axis.")
    return [_as(value_type, start + i * step, item, text) for i in range(count)]


def _as(value_type: type, number: float, item: str, text: str, *, rounding: bool = False):
    if value_type is int:
        if rounding:
            return int(round(number))
        if number != int(number):
            raise UserError(f"Axis {text!r}: {item!r} must be whole numbers.")
        return int(number)
    value = round(number, 6)  # 0.1 + 0.2 → 0.3, not 0.30000000000000004
    return 0.0 if value == 0 else value


def _sampler(item: str, text: str) -> str:
    found = canonical_sampler(item)
    if found:
        return found
    raise UserError(f"Axis {text!r}: unknown sampler {item!r}.", hint=f"Use one of: {', '.join(SAMPLER_NAMES)}.")
