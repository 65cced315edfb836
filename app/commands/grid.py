"""`styleshelf grid` — an X/Y/Z comparison grid (strengths, styles, seeds, prompts, samplers, steps, CFG, checkpoints).

    styleshelf grid --base MODEL --prompt TEXT --x "strength:stripes=0,0.5,1" --y "seed=1,2,3"
                    [--z "style=stripes,pastel"] [--adapter FILE:W …] --out grid.png

Everything ``generate`` takes sets what does not vary. The cells are saved as PNGs (with their own full
parameters) in ``<grid>-cells/`` beside the grid; the grid PNG carries the whole comparison.
"""

from __future__ import annotations

import argparse
import warnings

from app.commands.generate import _event_printer, _quiet_libraries, add_generation_options, generation_config
from app.engine.generate.grid_axes import AXIS_KINDS

AXIS_HELP = (
    "An axis: KIND[:STYLE]=VALUES with KIND one of " + ", ".join(AXIS_KINDS) + ". Values are a list (0,0.5,1) "
    "or ranges as A1111 writes them (0-1 (+0.25), 0-1 [5], 1-4); styles by shelf name, file stem or --adapter file."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grid",
        help="Compare strengths, styles, seeds, prompts, samplers or checkpoints in one labelled grid.",
        description="Render an X/Y/Z grid (AUTOMATIC1111's X/Y/Z plot) with one loaded model: every cell is saved "
        "with its own parameters, the grid PNG with row and column labels.",
    )
    add_generation_options(p)
    p.add_argument("--x", required=True, metavar="AXIS", help=AXIS_HELP)
    p.add_argument("--y", default="", metavar="AXIS", help="Rows (optional).")
    p.add_argument("--z", default="", metavar="AXIS", help="Blocks side by side (optional).")
    p.add_argument("--min-cell", type=int, default=192, metavar="PX",
                   help="Scale smaller cells up to at least this size in the grid (nearest neighbour).")  # fmt: skip
    p.add_argument("--out", required=True, metavar="GRID.png", help="The grid; cells go to GRID-cells/ beside it.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.engine.configbase import validate
    from app.engine.generate.grid import GridConfig, grid_paths, run_grid

    config = GridConfig(x=args.x, y=args.y, z=args.z, out=args.out, min_cell=args.min_cell)
    out, cells_dir = grid_paths(config)
    config.generate = generation_config(args, out_dir=str(cells_dir), file_stem="")
    validate(config)
    from app.engine.generate.grid_axes import parse_axes

    parse_axes(args.x, args.y, args.z)  # a typo in an axis costs nothing: refused before the model loads

    from app.engine.events import ImageReady, Progress
    from app.engine.generate import Generator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation chatter is not for CLI users
        _quiet_libraries()
        generator = Generator(args.base)
        show, close = _event_printer(args.json_events)
        done: list[str] = []

        def on_event(event) -> None:
            if isinstance(event, ImageReady):
                done.append(event.path)
            if isinstance(event, Progress) and event.phase == "grid":
                if args.json_events:
                    show(event)
                return  # the bar follows sampling steps over the whole grid
            show(event)

        try:
            result = run_grid(config, generator=generator, on_event=on_event)
        finally:
            close()
    if not args.json_events:
        print(f"wrote {len(result.cells)} cells to {cells_dir}")
        if result.grid:
            print(f"wrote {result.grid}")
    return 0 if result.grid else 1
