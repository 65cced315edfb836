"""Comparison grids (AUTOMATIC1111's X/Y/Z plot): every cell rendered by the one loaded generator, as a stream.

    result = run_grid(GridConfig(x="strength:stripes=0,0.5,1", y="seed=1,2,3", generate=settings),
                      generator=gen, on_event=print, cancel=token)

Each cell is an ordinary ``Generator.generate`` call, so it is bit for bit the image ``styleshelf generate``
makes with the same settings, and the base and the adapters stay loaded: a cell that differs only in
weights switches per-layer scales (milliseconds), never reloads. Events: the cell's sampling steps as
``Progress(phase="generate")`` counted over the whole grid, then ``ImageReady(index=cell)`` and
``Progress(phase="grid", step=cells done)``; ``Finished(output=grid PNG)`` at the end.

The grid PNG carries the first cell's A1111 parameters plus ``X Type``/``X Values``… (as A1111 writes its
grids) and our JSON record with the whole comparison, which ``read_grid`` turns back into a ``GridConfig``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from app.engine.errors import UserError
from app.engine.events import (
    NEVER_CANCEL,
    CancelToken,
    Event,
    EventCallback,
    Finished,
    ImageReady,
    Log,
    Progress,
    ignore_event,
)
from app.engine.generate.config import GenerateConfig
from app.engine.generate.grid_image import GridLayout, compose_grid
from app.engine.generate.grid_plan import LETTERS, CheckpointFinder, GridConfig, GridPlan, StyleFinder, plan_grid
from app.engine.generate.input_meta import find_input
from app.engine.generate.pngmeta import A1111_CHUNK, OUR_CHUNK, read_png_text, record_stack, write_png
from app.engine.generate.shareable import shareable_settings, shareable_stack
from app.engine.paths import user_data_dir

GRID_FORMAT = 1


@dataclass
class GridStarted(Event):
    """The plan, before the first cell: the shape and labels a viewer lays out (cell ``index`` → ``positions``)."""

    kind: ClassVar[str] = "grid-started"
    shape: list[int] = field(default_factory=list)  # columns, rows, blocks
    labels: dict[str, list[str]] = field(default_factory=dict)  # "X"/"Y"/"Z" -> one label per value
    positions: list[list[int]] = field(default_factory=list)  # per cell index: [x, y, z]
    grid: str = ""  # where the grid PNG will be written


@dataclass
class GridResult:
    grid: Path | None  # None when cancelled before the end
    cells: dict[int, Path] = field(default_factory=dict)  # cell index -> its PNG
    plan: GridPlan | None = None
    layout: GridLayout | None = None
    cancelled: bool = False
    seconds: float = 0.0
    cell_seconds: list[float] = field(default_factory=list)


def grid_paths(config: GridConfig) -> tuple[Path, Path]:
    """(grid PNG, folder of its cells)."""
    if config.out:
        out = Path(config.out).expanduser()
        if out.suffix.lower() != ".png":
            raise UserError(f"The grid must be a .png file (got {out.name}).")
    else:
        folder = user_data_dir() / "grids"
        folder.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in folder.iterdir() if (m := re.match(r"^(\d{5})-grid\.png$", p.name))]
        out = folder / f"{max(numbers, default=0) + 1:05d}-grid.png"
    return out, out.with_name(out.stem + "-cells")


def run_grid(
    config: GridConfig,
    *,
    generator: Any,
    on_event: EventCallback = ignore_event,
    cancel: CancelToken = NEVER_CANCEL,
    find_style: StyleFinder | None = None,
    find_checkpoints: CheckpointFinder | None = None,
) -> GridResult:
    """Render every cell with ``generator`` (an ``app.engine.generate.Generator``), then the labelled grid PNG."""
    started = time.perf_counter()
    out, cells_dir = grid_paths(config)
    if find_checkpoints is None:
        from app.engine.train.checkpoint_export import checkpoint_choices as find_checkpoints
    plan = plan_grid(config, find_style=find_style or find_on_shelf, find_checkpoints=find_checkpoints,
                     cells_dir=str(cells_dir))  # fmt: skip
    result = GridResult(grid=None, plan=plan)
    on_event(GridStarted(shape=list(plan.shape), labels=plan.labels, grid=str(out),
                         positions=[[c.x, c.y, c.z] for c in plan.cells]))  # fmt: skip
    total_steps = sum(c.config.steps for c in plan.cells)
    steps_before = 0

    def forward(event: Any) -> None:
        if isinstance(event, Progress):
            on_event(dataclasses.replace(event, step=min(total_steps, steps_before + event.step), total=total_steps,
                                         eta_s=None))  # fmt: skip
        elif isinstance(event, Log):
            on_event(event)  # the cell's own ImageReady/Finished are replaced by the grid's

    images: dict[tuple[int, int, int], Any] = {}
    for cell in plan.cells:
        if cancel.is_set():
            break
        t0 = time.perf_counter()
        made = generator.generate(cell.config, on_event=forward, cancel=cancel)
        if not made:
            break  # cancelled mid-cell: an unfinished image is never saved
        result.cell_seconds.append(time.perf_counter() - t0)
        steps_before += cell.config.steps
        path = made[0].path
        result.cells[cell.index] = path
        images[(cell.x, cell.y, cell.z)] = _load(path)
        on_event(ImageReady(path=str(path), index=cell.index, seed=made[0].seed))
        on_event(Progress(step=len(result.cells), total=len(plan.cells), phase="grid"))
    result.cancelled = len(result.cells) < len(plan.cells)
    if not result.cancelled:
        image, layout = compose_grid(images, x_labels=plan.labels["X"], y_labels=plan.labels["Y"],
                                     z_labels=plan.labels["Z"], min_cell=config.min_cell)  # fmt: skip
        first = read_png_text(result.cells[0])
        parameters, record = grid_metadata(config, plan, result.cells, layout, first, out)
        write_png(out, image, parameters, record)
        result.grid, result.layout = out, layout
    result.seconds = time.perf_counter() - started
    on_event(
        Finished(
            output=str(result.grid or ""),
            cancelled=result.cancelled,
            summary={"cells": [str(result.cells[i]) for i in sorted(result.cells)], "cells_folder": str(cells_dir),
                     "seconds": round(result.seconds, 3), "cell_seconds": [round(s, 4) for s in result.cell_seconds]},
        )
    )  # fmt: skip
    return result


def _load(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def grid_metadata(
    config: GridConfig, plan: GridPlan, cells: dict[int, Path], layout: GridLayout, first: dict[str, str], out: Path
) -> tuple[str, dict[str, Any]]:
    """A1111 text (first cell + X/Y/Z fields) and our record (first cell's record + the whole comparison)."""
    names = _typed_paths(plan)
    fields = []
    for letter, axis in plan.axes.items():
        fields.append(
            f"{letter} Type: {_quote(_scrub(axis.type_label, names))}, "
            f"{letter} Values: {json.dumps(_scrub(axis.raw, names))}"
        )
    parameters = first.get(A1111_CHUNK, "").rstrip() + ", " + ", ".join(fields)
    try:
        record = json.loads(first.get(OUR_CHUNK, "{}"))
    except json.JSONDecodeError:
        record = {}
    settings = shareable_settings(config.generate.to_dict(), drop=(*_PER_RUN, "stack"))  # names, not paths
    settings["stack"] = shareable_stack(config.generate.stack)
    if settings.get("seed") is None and all(a.kind != "seed" for a in plan.axes.values()):
        settings["seed"] = plan.cells[0].config.seed  # the one random seed every cell used: a rerun is the same
    record["grid"] = {
        "format": GRID_FORMAT,
        "axes": {k: {"spec": _scrub(a.spec, names), "type": _scrub(a.type_label, names),
                     "labels": [_scrub(t, names) for t in plan.labels[k]]} for k, a in plan.axes.items()},
        "x": _scrub(config.x, names), "y": _scrub(config.y, names), "z": _scrub(config.z, names),
        "min_cell": config.min_cell,
        "generate": settings,
        "shape": list(plan.shape),
        "cells": [
            {"x": c.x, "y": c.y, "z": c.z, "seed": c.config.seed, "file": _relative(cells[c.index], out)}
            for c in plan.cells
        ],
        "layout": dataclasses.asdict(layout),
    }  # fmt: skip
    return parameters, record


_PER_RUN = ("out_dir", "file_stem", "batch_count", "preview_every")  # where and how this run wrote, not what


def _typed_paths(plan: GridPlan) -> dict[str, str]:
    """Styles typed on an axis as file paths (``strength:/home/ana/ink.safetensors=0,1``) → their file stem: the
    name a shared grid may carry, and the one the shelf finds the style by when the grid is run again."""
    names = {}
    for axis in plan.axes.values():
        texts = [axis.target, *(v for v in axis.values if isinstance(v, str) and axis.kind in ("style", "checkpoint"))]
        for text in texts:
            if text and any(sep and sep in text for sep in ("/", "\\", os.sep, os.altsep)):
                name = re.split(r"[\\/]", text.rstrip("\\/"))[-1]
                names[text] = name[: -len(".safetensors")] if name.lower().endswith(".safetensors") else name
    return names


def _scrub(text: str, names: dict[str, str]) -> str:
    for path in sorted(names, key=len, reverse=True):  # a longer path first: never half-replaced by a shorter one
        text = text.replace(path, names[path])
    return text


def _quote(text: str) -> str:
    return json.dumps(text) if any(c in text for c in ',:"') else text


def _relative(path: Path, grid: Path) -> str:
    """A cell's file relative to the grid (never absolute: the grid PNG may be shared)."""
    try:
        return str(Path(path).resolve().relative_to(grid.resolve().parent))
    except ValueError:
        try:
            return os.path.relpath(Path(path).resolve(), grid.resolve().parent)
        except ValueError:  # another drive (Windows): the name is what is left
            return Path(path).name


# ------------------------------------------------------------------------------------------ reading back
@dataclass
class GridRecord:
    config: GridConfig
    shape: tuple[int, int, int]
    labels: dict[str, list[str]]
    cells: dict[tuple[int, int, int], Path]  # (x, y, z) -> the cell PNG (may be gone)
    layout: GridLayout


def read_grid(path: str | Path, lookup: Any = None) -> GridRecord | None:
    """The comparison stored in a grid PNG; None for a PNG that is not one of our grids.

    ``lookup`` (a ``LoraRef -> path`` function, as ``read_png_parameters`` takes) finds styles again by hash.
    """
    path = Path(path)
    text = read_png_text(path)
    try:
        grid = json.loads(text.get(OUR_CHUNK, "{}")).get("grid")
    except (json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(grid, dict) or grid.get("format") != GRID_FORMAT:
        return None
    settings = dict(grid["generate"])
    stack = record_stack(settings.pop("stack", []), lookup)
    inputs = json.loads(text.get(OUR_CHUNK, "{}")).get("inputs") or {}
    for key, config_key in (("init_image", "init_image"), ("mask", "mask_image")):
        if inputs.get(key) and settings.get(config_key):
            found, _why = find_input(inputs[key], str(settings[config_key]), path.parent)
            settings[config_key] = str(found) if found is not None else str(settings[config_key])
    known = {f.name for f in dataclasses.fields(GenerateConfig)}
    generate = GenerateConfig(**{k: v for k, v in settings.items() if k in known}, stack=stack)
    config = GridConfig(x=grid.get("x", ""), y=grid.get("y", ""), z=grid.get("z", ""),
                        min_cell=int(grid.get("min_cell", 192)), out=str(path), generate=generate)  # fmt: skip
    cells = {(c["x"], c["y"], c["z"]): (path.parent / c["file"]) for c in grid.get("cells", [])}
    labels = {k: grid["axes"].get(k, {}).get("labels", []) for k in LETTERS}
    return GridRecord(config=config, shape=tuple(grid["shape"]), labels=labels, cells=cells,
                      layout=GridLayout(**grid["layout"]))  # fmt: skip


# ------------------------------------------------------------------------------------------ finding styles
def find_on_shelf(name: str) -> str:
    """A style by file path, shelf name (file stem), title, hash prefix, or a unique part of a name or title."""
    from app.engine.shelf.library import Library

    library = Library.default()
    try:
        entry = library.find(name)
    except UserError as err:
        key = name.casefold()
        hits = [e for e in library.scan(with_hashes=False) if e.ok and (key in e.name.casefold() or
                                                                         key in e.title.casefold())]  # fmt: skip
        if len(hits) != 1:
            if len(hits) > 1:
                raise UserError(f"{name!r} matches {len(hits)} styles: {', '.join(e.name for e in hits)}.") from None
            raise err
        entry = hits[0]
    if not entry.ok:
        raise UserError(f"{entry.path.name} cannot be used: {entry.problem}")
    return str(entry.path)
