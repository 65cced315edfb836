"""`styleshelf generate` — one or more images from a base model and a stack of adapters."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from app.commands.generate_inputs import (
    IMAGE_INPUT_SETTINGS,
    add_image_input_arguments,
    cancel_on_ctrl_c,
    check_image_input_arguments,
    restyle_folder_command,
)
from app.commands.setting_flags import add_setting_flags, setting_values
from app.commands.shelf import parse_weighted
from app.engine.errors import UserError
from app.engine.generate.config import GenerateConfig

# The settings of one picture: their flags come from GenerateConfig (help, defaults and ranges included).
PICTURE_SETTINGS = ("prompt", "negative", "seed", "steps", "guidance", "width", "height", "sampler", "insert_triggers")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="Generate images with a base model and weighted adapters.",
        description="Generate PNGs (with A1111-compatible parameters) from a base model and a stack of adapters.",
    )
    add_generation_options(p)
    add_setting_flags(p, GenerateConfig, only=["batch_count"])
    p.add_argument("--out", metavar="FILE.png", help="Output PNG (FILE-1.png, FILE-2.png… for batches).")
    add_image_input_arguments(p)
    p.set_defaults(func=run)


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """The settings of one picture (also what a grid keeps fixed; ``styleshelf grid`` shares them)."""
    p.add_argument("--base", required=True, metavar="MODEL", help="Base model: diffusers folder or .safetensors file.")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="FILE[:WEIGHT]",
        help="An adapter and its weight (default 1); repeat to stack several, in order.",
    )
    p.add_argument("--stack", default=None, metavar="FILE.stack.json",
                   help="A house-style stack file; its adapters come first, then any --adapter.")  # fmt: skip
    add_setting_flags(p, GenerateConfig, only=PICTURE_SETTINGS, required=["prompt"])
    # Every other setting a picture has (a new GenerateConfig field is a flag with no edit here).
    add_setting_flags(p, GenerateConfig, exclude=(*PICTURE_SETTINGS, "batch_count", *IMAGE_INPUT_SETTINGS))
    p.add_argument("--json-events", action="store_true", help="Print one JSON event per line instead of a bar.")


def run(args: argparse.Namespace) -> int:
    folder_mode = check_image_input_arguments(args)
    out = Path(args.out or "restyled.png")
    if not folder_mode and (not args.out or out.suffix.lower() != ".png"):
        raise UserError(f"--out must name a .png file (got {out.name if args.out else 'nothing'}).")
    config = generation_config(args, out_dir=str(out.parent if str(out.parent) else Path(".")), file_stem=out.stem)
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
    """A validated ``GenerateConfig`` from the setting flags given (adapters checked too); ``more`` sets
    further fields."""
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
    # Built from the flags given (GenerateConfig's defaults for the rest) and checked as it is built: a typo
    # or an out-of-range value costs nothing, before the model loads.
    return GenerateConfig(
        **setting_values(GenerateConfig, args),
        out_dir=out_dir,
        file_stem=file_stem,
        preview_every=0,
        stack=stack,
        **more,
    )


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
