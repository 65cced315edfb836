"""`styleshelf models …` — build tiny offline models and inspect base models."""

from __future__ import annotations

import argparse

FAMILY_CHOICES = ("sd15", "sd2", "sd2-v", "sdxl")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="Build tiny offline models, inspect base models.")
    models_sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    models_sub.required = True
    tiny = models_sub.add_parser(
        "make-tiny", help="Write a tiny random SD-architecture model (diffusers folder) for tests and demos."
    )
    tiny.add_argument("out_dir", metavar="OUT_DIR")
    tiny.add_argument("--family", choices=FAMILY_CHOICES, default="sd15")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=run_make_tiny)


def run_make_tiny(args: argparse.Namespace) -> int:
    from app.engine.models.tiny import make_tiny

    out = make_tiny(args.out_dir, args.family, args.seed)
    print(f"wrote tiny {args.family} model to {out}")
    return 0
