"""`styleshelf shelf` (placeholder until its engine lands)."""

from __future__ import annotations

import argparse

from app.engine.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("shelf", help="(not built yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'shelf' is not built yet.")
