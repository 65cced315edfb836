"""`styleshelf generate` options for image to image, inpainting and batch restyle of a folder.

styleshelf generate --base M --prompt P --init-image sketch.png --strength 0.6 --out out.png
styleshelf generate --base M --prompt P --init-image photo.png --mask mask.png --mask-blur 4 --out out.png
styleshelf generate --base M --prompt P --init-dir frames/ --out-dir restyled/ --strength 0.5 --seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

from app.engine.errors import UserError
from app.engine.generate.config import GenerateConfig

IMAGE_INPUT_SETTINGS = ("init_image", "strength", "resize_mode", "mask_image", "mask_blur", "inpaint_area",
                        "inpaint_padding", "masked_content")  # fmt: skip


def add_image_input_arguments(p: argparse.ArgumentParser) -> None:
    from app.commands.setting_flags import add_setting_flags

    g = p.add_argument_group("image to image and inpainting (AUTOMATIC1111's settings)")
    add_setting_flags(g, GenerateConfig, only=IMAGE_INPUT_SETTINGS)
    g.add_argument(
        "--init-dir",
        metavar="DIR",
        default="",
        help="Batch restyle: every picture of DIR, each output named after its input (needs --out-dir).",
    )
    g.add_argument("--mask-dir", metavar="DIR", default="", help="Batch: masks named like the pictures (optional).")
    g.add_argument("--out-dir", metavar="DIR", default="", help="Batch: where the restyled pictures go.")


def check_image_input_arguments(args: argparse.Namespace) -> bool:
    """Refuse contradictory options before the model loads; True for a folder (batch) run."""
    if args.init_dir:
        if args.init_image or args.mask_image:
            raise UserError("Give either --init-dir (a folder) or --init-image/--mask (one picture), not both.")
        if not args.out_dir:
            raise UserError("--init-dir needs --out-dir (outputs are named like their inputs).")
        from app.engine.generate.batch import folder_pictures

        folder_pictures(args.init_dir)  # a typo in the folder costs nothing
        return True
    if args.mask_image and not args.init_image:
        raise UserError("--mask needs --init-image (the picture to inpaint).")
    for flag, value in (("--init-image", args.init_image), ("--mask", args.mask_image)):
        if value:
            from pathlib import Path

            if not Path(value).is_file():
                raise UserError(f"{flag}: file not found: {value}")
    return False


@contextlib.contextmanager
def cancel_on_ctrl_c() -> Iterator[Any]:
    """The first Ctrl-C cancels after the current step (finished pictures are kept); a second one aborts."""
    from app.engine.events import CancelToken

    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def on_sigint(_sig: int, _frame: Any) -> None:
        if token.is_set():
            raise KeyboardInterrupt
        token.cancel()
        print("\ncancelling after this step… (Ctrl-C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


def restyle_folder_command(generator: Any, config: Any, args: argparse.Namespace, on_event: Any, cancel: Any) -> int:
    from app.engine.events import Finished, Log
    from app.engine.generate.batch import restyle_folder

    summary: dict[str, Any] = {}

    def show(event: Any) -> None:
        if isinstance(event, Finished):
            summary.update(event.summary, cancelled=event.cancelled)
        if isinstance(event, Log) and not args.json_events and event.level == "info":
            print(event.message, file=sys.stderr)
        on_event(event)

    images = restyle_folder(generator, config, args.init_dir, args.out_dir, mask_dir=args.mask_dir or None,
                            on_event=show, cancel=cancel)  # fmt: skip
    if not args.json_events:
        for image in images:
            print(f"wrote {image.path}")
        for line in summary.get("skipped", []):
            print(f"skipped {line}", file=sys.stderr)
        print(f"{len(images)} restyled (seed {summary.get('seed')}){', cancelled' if summary.get('cancelled') else ''}")
    return 130 if summary.get("cancelled") else 0
