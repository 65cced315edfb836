"""From a grid's settings to the list of cells it will render, each a complete ``GenerateConfig``.

The fixed settings (prompt, stack, sampler, …) are the Generate tab's; every axis changes one thing per
value. Styles named on an axis are found in the stack first (by display name, file stem or path, then a
unique part of the stem), then on the shelf. Each axis acts on a *slot* of the stack that is resolved once,
so a strength axis and a checkpoint axis on the same style meet in the same entry:

- ``strength:S``   sets the slot's weight (the slot is added, enabled, when the stack lacks S);
- ``style``        one slot per value, exactly one enabled per cell (``none`` = none), each with its stack weight
                   (or ``name:weight``, else 1);
- ``style:S``      swaps the file of the stack's S entry for each value, keeping its weights;
- ``checkpoint:S`` swaps S's file for one of its training checkpoints (``final`` = S itself, ``base`` = off).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.engine.configbase import Settings, setting, validate
from app.engine.errors import UserError
from app.engine.generate.config import GenerateConfig
from app.engine.generate.grid_axes import NO_STYLE, Axis, parse_axis
from app.engine.shelf.stack import StackEntry

StyleFinder = Callable[[str], str]  # a style's name as typed -> its adapter file (UserError when unknown)
CheckpointFinder = Callable[[str, str], list[tuple[str, str]]]  # (adapter file, value) -> [(label, file)]
LETTERS = ("X", "Y", "Z")


@dataclass
class GridConfig(Settings):
    x: str = setting("", "Columns: an axis such as strength:stripes=0,0.5,1 or seed=1,2,3.")
    y: str = setting("", "Rows: an axis (empty = one row).")
    z: str = setting("", "Blocks side by side: an axis (empty = one block).")
    out: str = setting("", "The grid PNG; empty = numbered in the gallery's grids folder. Cells go to <name>-cells/.")
    min_cell: int = setting(
        192, "Cells smaller than this many pixels are scaled up (nearest neighbour) in the grid, so labels stay "
        "legible.", minimum=16, maximum=2048,
    )  # fmt: skip
    generate: GenerateConfig = field(default_factory=GenerateConfig)  # everything that does not vary


@dataclass
class GridCell:
    index: int
    x: int
    y: int
    z: int
    config: GenerateConfig


@dataclass
class GridPlan:
    axes: dict[str, Axis]  # "X"/"Y"/"Z" -> axis, only those given
    labels: dict[str, list[str]]  # per letter, one label per value (empty list when the axis is absent)
    cells: list[GridCell]
    stack: list[StackEntry]  # the fixed stack with every slot the axes use

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(max(1, len(self.labels[k])) for k in LETTERS)  # type: ignore[return-value]


Applier = Callable[[GenerateConfig], None]


def plan_grid(
    config: GridConfig,
    *,
    find_style: StyleFinder,
    find_checkpoints: CheckpointFinder | None = None,
    cells_dir: str = "",
) -> GridPlan:
    validate(config)
    base = copy.deepcopy(config.generate)
    validate(base)
    axes = {k: parse_axis(t) for k, t in zip(LETTERS, (config.x, config.y, config.z)) if t and t.strip()}
    if not axes:
        raise UserError('A grid needs at least one axis (--x), e.g. "strength:stripes=0,0.5,1".')
    kinds = [a.kind for a in axes.values()]
    for kind in set(kinds):
        if kinds.count(kind) > 1 and kind not in ("strength", "checkpoint", "style"):
            raise UserError(f"Two axes both vary {kind}; each value would be overwritten by the other.")
    if base.seed is None and "seed" not in kinds:
        base.seed = secrets.randbelow(2**32)  # one seed for every cell, as A1111 does, so only the axes differ
    stack = base.stack
    choices: dict[str, list[tuple[str, Applier]]] = {}
    for letter in sorted(axes, key=lambda k: _ORDER.index(axes[k].kind)):
        choices[letter] = _choices(axes[letter], base, stack, find_style, find_checkpoints)
    labels = {k: [label for label, _ in choices.get(k, [])] for k in LETTERS}
    order = sorted(choices, key=lambda k: _ORDER.index(axes[k].kind))
    shape = [max(1, len(labels[k])) for k in LETTERS]
    cells = []
    for z in range(shape[2]):
        for y in range(shape[1]):
            for x in range(shape[0]):
                cell = copy.deepcopy(base)
                position = dict(zip(LETTERS, (x, y, z)))
                for letter in order:
                    choices[letter][position[letter]][1](cell)
                cell.batch_count, cell.preview_every = 1, 0
                cell.out_dir = cells_dir or cell.out_dir
                cell.file_stem = cell_stem(x, y, z, shape)
                validate(cell)
                cells.append(GridCell(index=len(cells), x=x, y=y, z=z, config=cell))
    return GridPlan(axes=axes, labels=labels, cells=cells, stack=copy.deepcopy(stack))


def cell_stem(x: int, y: int, z: int, shape: list[int] | tuple[int, ...]) -> str:
    parts = [f"y{y + 1}"] if shape[1] > 1 else []
    parts.append(f"x{x + 1}")
    if shape[2] > 1:
        parts.append(f"z{z + 1}")
    return "cell-" + "-".join(parts)


# Prompts are rewritten before S/R looks into them; structural stack changes come before strengths.
_ORDER = ("prompt", "prompt_sr", "style", "checkpoint", "strength", "seed", "sampler", "steps", "cfg")


def _choices(axis: Axis, base: GenerateConfig, stack: list[StackEntry], find_style: StyleFinder,
             find_checkpoints: CheckpointFinder | None) -> list[tuple[str, Applier]]:  # fmt: skip
    labels = axis.value_labels()
    kind = axis.kind
    if kind in ("seed", "steps", "cfg", "sampler", "prompt"):
        attr = {"cfg": "guidance"}.get(kind, kind)
        return [(label, _setter(attr, _seed(v) if kind == "seed" else v)) for label, v in zip(labels, axis.values)]
    if kind == "prompt_sr":
        search = axis.values[0]
        if search not in base.prompt and search not in base.negative:
            raise UserError(f"Prompt S/R: {search!r} is not in the prompt or the negative prompt.",
                            hint="The first value is the text that the others replace.")  # fmt: skip
        return [(label, _replacer(search, v)) for label, v in zip(labels, axis.values)]
    if kind == "strength":
        slot = _slot(stack, axis.target, find_style, add_enabled=True)
        return [(label, _weight(slot, v)) for label, v in zip(labels, axis.values)]
    if kind == "style" and axis.target:
        slot = _slot(stack, axis.target, find_style, add_enabled=None)
        out = []
        for value in axis.values:
            name, weight = _name_and_weight(value)
            path = "" if name.lower() in NO_STYLE else _style_file(stack, name, find_style)
            out.append((name, _swap(slot, path, name, weight)))
        return out
    if kind == "style":
        return _style_choices(axis, stack, find_style)
    return _checkpoint_choices(axis, stack, find_style, find_checkpoints)


def _seed(value: int) -> int:
    return secrets.randbelow(2**32) if value == -1 else value  # A1111: -1 = a random seed


def _setter(attr: str, value) -> Applier:
    return lambda cfg: setattr(cfg, attr, value)


def _replacer(search: str, value: str) -> Applier:
    def apply(cfg: GenerateConfig) -> None:
        cfg.prompt = cfg.prompt.replace(search, value)
        cfg.negative = cfg.negative.replace(search, value)

    return apply


def _weight(slot: int, weight: float) -> Applier:
    def apply(cfg: GenerateConfig) -> None:
        cfg.stack[slot].weight = weight

    return apply


def _swap(slot: int, path: str, name: str, weight: float | None = None) -> Applier:
    def apply(cfg: GenerateConfig) -> None:
        entry = cfg.stack[slot]
        if not path:
            entry.enabled = False
            return
        entry.path, entry.name, entry.sha256, entry.enabled = path, name, "", True
        if weight is not None:
            entry.weight = weight

    return apply


def _style_choices(axis: Axis, stack: list[StackEntry], find_style: StyleFinder) -> list[tuple[str, Applier]]:
    picks: list[tuple[str, int | None, float | None]] = []
    for value in axis.values:
        if value.lower() in NO_STYLE:
            picks.append((value, None, None))
            continue
        name, weight = _name_and_weight(value)
        picks.append((name, _slot(stack, name, find_style, add_enabled=False), weight))
    slots = {slot for _, slot, _ in picks if slot is not None}
    weights = {slot: stack[slot].weight for slot in slots}  # styles added from the shelf come at 1
    for slot in slots:
        stack[slot].enabled = False  # in the fixed stack, the axis' styles are off; each cell turns one on

    def choose(slot: int | None, weight: float | None) -> Applier:
        def apply(cfg: GenerateConfig) -> None:
            for s in slots:
                cfg.stack[s].enabled = s == slot
            if slot is not None:
                cfg.stack[slot].weight = weights[slot] if weight is None else weight

        return apply

    return [(label, choose(slot, weight)) for label, slot, weight in picks]


def _name_and_weight(value: str) -> tuple[str, float | None]:
    name, sep, weight = value.rpartition(":")
    if sep and name:
        try:
            return name.strip(), float(weight)
        except ValueError:
            pass
    return value, None


def _checkpoint_choices(axis: Axis, stack: list[StackEntry], find_style: StyleFinder,
                        find_checkpoints: CheckpointFinder | None) -> list[tuple[str, Applier]]:  # fmt: skip
    if find_checkpoints is None:
        raise UserError("A checkpoint axis needs the training checkpoints of a style, which are not available here.")
    slot = _slot(stack, axis.target, find_style, add_enabled=True)
    out: list[tuple[str, Applier]] = []
    for value in axis.values:
        if value.lower() in NO_STYLE:
            out.append(("base", _swap(slot, "", "")))
            continue
        for label, path in find_checkpoints(stack[slot].path, value):
            out.append((label, _swap(slot, path, stack[slot].name or Path(stack[slot].path).stem)))
    return out


def _style_file(stack: list[StackEntry], ref: str, find_style: StyleFinder) -> str:
    """A style's file: a stack entry it names (an --adapter file), else the shelf's."""
    index = _find_in_stack(stack, ref)
    return stack[index].path if index is not None else find_style(ref)


def _find_in_stack(stack: list[StackEntry], ref: str) -> int | None:
    key = ref.casefold()
    exact = [
        i for i, e in enumerate(stack) if key in (e.name.casefold(), Path(e.path).stem.casefold(), e.path.casefold())
    ]
    if len(exact) == 1:
        return exact[0]
    partial = [i for i, e in enumerate(stack) if key in Path(e.path).stem.casefold() or key in e.name.casefold()]
    if not exact and len(partial) == 1:
        return partial[0]
    return None


def _slot(stack: list[StackEntry], ref: str, find_style: StyleFinder, *, add_enabled: bool | None) -> int:
    """Index of the stack entry ``ref`` names; a style from the shelf is appended (None: must be in the stack)."""
    if not ref:
        if len(stack) == 1:
            return 0
        raise UserError(
            'Say which style the axis acts on, e.g. "strength:stripes=0,0.5,1"'
            + (f" (the stack has {len(stack)} styles)." if stack else " (the stack is empty).")
        )
    index = _find_in_stack(stack, ref)
    if index is not None:
        return index
    if add_enabled is None:
        raise UserError(
            f"The stack has no style {ref!r} to swap.", hint="Tick it on the shelf or add it with --adapter."
        )
    path = find_style(ref)
    for i, e in enumerate(stack):
        if e.path and Path(e.path).resolve() == Path(path).resolve():
            return i
    stack.append(StackEntry(path=path, enabled=add_enabled, weight=1.0, name=ref))
    return len(stack) - 1
