"""`styleshelf generate` — one or more images from a base model and a stack of adapters."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from app.commands.shelf import parse_weighted
from app.engine.errors import UserError
from app.engine.generate.samplers import SAMPLER_NAMES
from app.commands.generate_inputs import (
    add_image_input_arguments,
    cancel_on_ctrl_c,
    check_image_input_arguments,
    image_input_settings,
    restyle_folder_command,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="Generate images with a base model and weighted adapters.",
        description="Generate PNGs (with A1111-compatible parameters) from a base model and a stack of adapters.",
    )
    add_generation_options(p)
    p.add_argument("--batch-count", type=int, default=1, help="Images one after another with seed, seed+1, …")
    p.add_argument("--out", metavar="FILE.png", help="Output PNG (FILE-1.png, FILE-2.png… for batches).")
    add_image_input_arguments(p)
    p.set_defaults(func=run)


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """The settings of one picture (also what a grid keeps fixed; ``styleshelf grid`` shares them)."""
    p.add_argument("--base", required=True, metavar="MODEL", help="Base model: diffusers folder or .safetensors file.")
    p.add_argument("--prompt", required=True, metavar="TEXT")
    p.add_argument("--negative", default="", metavar="TEXT", help="Negative prompt.")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="FILE[:WEIGHT]",
        help="An adapter and its weight (default 1); repeat to stack several, in order.",
    )
    p.add_argument("--stack", default=None, metavar="FILE.stack.json",
                   help="A house-style stack file; its adapters come first, then any --adapter.")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="Seed (default: random; it is printed and saved).")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=7.0, help="CFG scale.")
    p.add_argument("--width", type=int, default=None, help="Default: the base model's native size.")
    p.add_argument("--height", type=int, default=None, help="Default: the base model's native size.")
    p.add_argument("--sampler", default="DPM++ 2M", metavar="NAME", help=f"One of: {', '.join(SAMPLER_NAMES)}.")
    p.add_argument("--no-triggers", action="store_true", help="Do not add adapters' trigger phrases to the prompt.")
    p.add_argument("--json-events", action="store_true", help="Print one JSON event per line instead of a bar.")


def run(args: argparse.Namespace) -> int:
    folder_mode = check_image_input_arguments(args)
    out = Path(args.out or "restyled.png")
    if not folder_mode and (not args.out or out.suffix.lower() != ".png"):
        raise UserError(f"--out must name a .png file (got {out.name if args.out else 'nothing'}).")
    config = generation_config(
        args, out_dir=str(out.parent if str(out.parent) else Path(".")), file_stem=out.stem,
        batch_count=args.batch_count, **image_input_settings(args),
    )  # fmt: skip
    from app.engine.generate import Generator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation chatter is not for CLI users
        _quiet_libraries()
        generator = Generator(args.base)
        on_event, close = _event_printer(args.json_events)
        with cancel_on_ctrl_c() as cancel:
            try:
                if folder_mode:
                    return restyle_folder_command(generator, config, args, on_event, cancel)
                images = generator.generate(config, on_event=on_event, cancel=cancel)
            finally:
                close()
    for image in images:
        if not args.json_events:
            print(f"wrote {image.path} (seed {image.seed})")
    return 130 if cancel.is_set() else 0


def generation_config(args: argparse.Namespace, *, out_dir: str, file_stem: str, **more):
    """A validated ``GenerateConfig`` from the options of ``add_generation_options`` (adapters checked too);
    ``more`` sets further fields (batch count, image-to-image settings)."""
    from app.engine.configbase import validate
    from app.engine.generate import GenerateConfig
    from app.engine.generate.identity import adapter_identity
    from app.engine.shelf.stack import StackEntry

    stack = []
    if getattr(args, "stack", None):
        from app.commands.shelf_team import resolve_for_generate

        stack += resolve_for_generate(args.stack)
    for item in args.adapter:
        path, weight = parse_weighted(item)
        adapter_identity(path)  # refuse a missing or broken file before spending seconds on the base model
        stack.append(StackEntry(path=path, weight=weight))
    config = GenerateConfig(
        prompt=args.prompt,
        negative=args.negative,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        width=args.width,
        height=args.height,
        sampler=args.sampler,
        insert_triggers=not args.no_triggers,
        out_dir=out_dir,
        file_stem=file_stem,
        preview_every=0,
        stack=stack,
        **more,
    )
    validate(config)  # before loading the model: a typo costs nothing
    return config


def _quiet_libraries() -> None:
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


def _event_printer(json_events: bool):
    from app.engine.events import Event, Level, Log, Progress, json_event_printer

    if json_events:
        return json_event_printer(), lambda: None
    from tqdm import tqdm

    bar: list[tqdm] = []  # created at the first step, so an early error prints only its own line

    def show(event: Event) -> None:
        if isinstance(event, Progress):
            if not bar:
                bar.append(tqdm(total=event.total, unit="step", file=sys.stderr, leave=False))
            bar[0].total = event.total
            bar[0].n = event.step
            bar[0].refresh()
        elif isinstance(event, Log) and event.level == Level.WARNING:
            print(f"warning: {event.message}", file=sys.stderr)

    def close() -> None:
        if bar:
            bar[0].close()

    return show, close
