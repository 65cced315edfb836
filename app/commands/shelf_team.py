"""`styleshelf shelf stack …` and `shelf author` — house-style stack files and the author name.

styleshelf shelf stack save NAME ENTRY[:WEIGHT]… --folder DIR [--description D] [--author A] [--force]
styleshelf shelf stack show FILE [--json]
styleshelf shelf author [NAME | --clear]
styleshelf generate … --stack FILE              (see app/commands/generate.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable


def register(action: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the actions to ``shelf``; ``action`` is shelf's own helper (it adds the shared ``--folder``)."""
    stack = action("stack", help="House-style stacks as shareable .stack.json files.")
    ops = stack.add_subparsers(dest="stack_command", metavar="ACTION")
    ops.required = True
    p = ops.add_parser("save", help="Save weighted adapters as NAME.stack.json into --folder DIR.")
    p.add_argument("title", metavar="NAME")
    p.add_argument("adapters", nargs="+", metavar="ENTRY[:WEIGHT]",
                   help="File name, title, hash prefix or path of an adapter on the shelf, "
                        "with its strength.")  # fmt: skip
    p.add_argument("--folder", action="append", default=[], metavar="DIR",
                   help="Where the stack file goes (the last one given); "
                        "every --folder is also searched for adapters.")  # fmt: skip
    p.add_argument("--description", default="")
    p.add_argument("--author", default=None, help="Default: your author name (`styleshelf shelf author NAME`).")
    p.add_argument("--force", action="store_true", help="Replace a stack file of the same name.")
    p.set_defaults(func=run_stack_save)
    p = ops.add_parser("show", help="What a stack file holds and which shelf files its entries resolve to.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--folder", action="append", default=[], metavar="DIR", help="An extra folder of adapters.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_stack_show)

    p = action("author", help="Your name, written as the author into what you train, bake or edit.")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="Without NAME: print the current one.")
    p.add_argument("--clear", action="store_true", help="Stop writing an author name.")
    p.set_defaults(func=run_author)


def _library(folders: list[str]):
    from app.engine.shelf.library import Library

    return Library.default(folders)


def run_stack_save(args: argparse.Namespace) -> int:
    from app.commands.shelf import parse_weighted
    from app.engine.errors import UserError
    from app.engine.shelf.stack import StackEntry
    from app.engine.shelf.stack_file import save_stack_file

    if not args.folder:
        raise UserError("Say where to save the stack file: --folder DIR (a shelf folder, e.g. the team share).")
    lib = _library(args.folder)
    entries, titles = [], {}
    for i, spec in enumerate(args.adapters):
        name, weight = parse_weighted(spec)
        found = lib.find(name)
        if not found.ok:
            raise UserError(f"{found.path.name} cannot go into a stack: {found.problem}")
        entries.append(StackEntry(str(found.path), weight=weight, name=found.name, sha256=found.tensor_sha256))
        titles[i] = found.title
    path = save_stack_file(args.folder[-1], args.title, entries, description=args.description, author=args.author,
                           titles=titles, overwrite=args.force)  # fmt: skip
    print(f"saved {path} ({len(entries)} adapters)")
    return 0


def run_stack_show(args: argparse.Namespace) -> int:
    from app.engine.shelf.stack_file import open_stack_file

    stack, resolutions = open_stack_file(args.file, _library(args.folder))
    if args.json:
        print(json.dumps({
            "title": stack.title, "author": stack.author, "description": stack.description, "created": stack.created,
            "entries": [{"name": r.label, "title": stack.titles.get(i, r.label), "strength": r.entry.weight,
                         "text_encoder_strength": r.entry.text_encoder_weight, "enabled": r.entry.enabled,
                         "resolved": r.how, "path": r.entry.path, "note": r.note, "older_path": r.older_path,
                         "current_path": r.current_path} for i, r in enumerate(resolutions)],
        }, indent=2, ensure_ascii=False))  # fmt: skip
        return 0
    by = f" by {stack.author}" if stack.author else ""
    print(f"{stack.title}{by}  ({Path(stack.path).name}{', ' + stack.created if stack.created else ''})")
    if stack.description:
        print(f"  {stack.description}")
    for i, r in enumerate(resolutions, 1):
        te = "" if r.entry.text_encoder_weight is None else f" te {r.entry.text_encoder_weight:g}"
        off = "" if r.entry.enabled else " (off)"
        where = r.entry.path or "NOT FOUND"
        print(f"  {i}. {r.label:<24} {r.entry.weight:g}{te}{off}  → {where}")
    for note in (r.note for r in resolutions if r.note):
        print(f"  ⚠ {note}")
    return 0


def resolve_for_generate(stack_path: str, extra_folders: list[str] = ()) -> list:
    """The stack entries ``generate --stack`` uses; each note (older version, missing) is printed as a warning,
    and missing entries are left out so the rest of the stack still renders."""
    from app.engine.shelf.stack_file import open_stack_file

    _stack, resolutions = open_stack_file(stack_path, _library(list(extra_folders)))
    for r in resolutions:
        if r.note:
            print(f"warning: {r.note}" + (" Left out." if not r.entry.path else ""), file=sys.stderr)
    return [r.entry for r in resolutions if r.entry.path]


def run_author(args: argparse.Namespace) -> int:
    from app.engine.author import get_author, set_author

    if args.clear or args.name is not None:
        name = set_author("" if args.clear else args.name)
        print(f"author set to {name!r}" if name else "author cleared: new files carry no author name")
        return 0
    current = get_author()
    print(current if current else "(no author name set: `styleshelf shelf author NAME`)")
    return 0
