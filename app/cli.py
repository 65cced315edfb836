"""`styleshelf` — the headless CLI over the same engine the GUI uses.

Each sub-command lives in ``app/commands/<name>.py`` with ``register(subparsers)``; handlers import torch
and diffusers lazily so ``styleshelf --help`` stays instant. A ``UserError`` becomes one line on stderr
and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("train", "generate", "grid", "shelf", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleshelf",
        description="Train LoRA style adapters and generate images with a shelf of adapters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"app.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # No model hub is ever reachable from StyleShelf: fail fast instead of waiting on timeouts.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from app.engine.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"styleshelf: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("styleshelf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `styleshelf shelf list | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
