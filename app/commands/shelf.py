"""`styleshelf shelf …` — list, inspect, import, export, remove, edit and bake adapters.

styleshelf shelf list [--json] [--hashes] [--skipped]   (every action also takes --folder DIR, repeatable)
styleshelf shelf inspect FILE [--json] [--base MODEL]
styleshelf shelf import FILE…
styleshelf shelf export NAME DEST [--force]
styleshelf shelf remove NAME
styleshelf shelf edit FILE [--title T] [--trigger T] [--description D] [--thumbnail IMG | --no-thumbnail]
styleshelf shelf bake --out FILE NAME[:WEIGHT]… [--mode concat|svd] [--rank R] [--title T]
styleshelf shelf from-checkpoint RUN_DIR STEP --out FILE [--title T]
styleshelf shelf stack save|show …, styleshelf shelf author NAME  (app/commands/shelf_team.py)
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("shelf", help="List, inspect, import, export and bake adapters.")
    actions = parser.add_subparsers(dest="shelf_command", metavar="ACTION")
    actions.required = True
    # Every action accepts --folder after its name (``shelf list --folder /team/styles``).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--folder", action="append", default=[], metavar="DIR",
                        help="An extra folder of adapters (repeatable; also STYLESHELF_ADAPTER_PATH).")  # fmt: skip

    def action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, parents=[common])

    p = action("list", help="Adapters on the shelf (reads file headers only).")
    p.add_argument("--json", action="store_true", help="One JSON array on stdout.")
    p.add_argument("--hashes", action="store_true", help="Compute missing hashes (reads every file once; cached).")
    p.add_argument("--skipped", action="store_true",
                   help="List the .safetensors files that are not adapters "
                        "(checkpoints, models, damaged files) and why.")  # fmt: skip
    p.set_defaults(func=run_list)

    p = action("inspect", help="Metadata, family, hashes, rank, key layout and a full validity check.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--base", metavar="MODEL", default="",
                   help="Also check the layer shapes fit this base model and measure each module's update "
                   "against its layer weights (loads the model).")  # fmt: skip
    p.set_defaults(func=run_inspect)

    p = action("import", help="Copy adapter files onto your shelf (validated, duplicates detected).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run_import)

    p = action("export", help="Write one adapter as a single self-contained file.")
    p.add_argument("name", metavar="NAME", help="File name, title, hash prefix or path of the adapter.")
    p.add_argument("dest", metavar="DEST", help="A file path or a folder.")
    p.add_argument("--force", action="store_true", help="Overwrite DEST if it exists.")
    p.set_defaults(func=run_export)

    p = action("remove", help="Delete an adapter from your shelf folder.")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=run_remove)

    p = action("edit", help="Change title, trigger phrase, description or thumbnail in place.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--title")
    p.add_argument("--trigger")
    p.add_argument("--description")
    thumb = p.add_mutually_exclusive_group()
    thumb.add_argument("--thumbnail", metavar="IMAGE", help="An image file (shrunk to 256 px).")
    thumb.add_argument("--no-thumbnail", action="store_true", help="Remove the thumbnail.")
    p.set_defaults(func=run_edit)

    p = action("bake", help="Merge weighted adapters into one new adapter file.")
    p.add_argument("adapters", nargs="+", metavar="NAME[:WEIGHT]")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--mode", choices=("concat", "svd"), default=None,
                   help="concat: exact, ranks add (default); "
                        "svd: compress to --rank (default when --rank is given).")  # fmt: skip
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--title", default="")
    p.set_defaults(func=run_bake)

    p = action("from-checkpoint", help="Write a training checkpoint as an adapter file (ss_steps = its step).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="The run's <adapter>.checkpoints folder (or the adapter file).")
    p.add_argument("step", metavar="STEP", help="The checkpoint's step (200 or step-000200).")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--title", default="", help="Title inside the file (default: the run's name).")
    p.set_defaults(func=run_from_checkpoint)

    from app.commands import shelf_team  # `shelf stack save|show`, `shelf author`

    shelf_team.register(action)


def _library(args: argparse.Namespace):
    from app.engine.shelf.library import Library

    return Library.default(args.folder)


def _human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def run_list(args: argparse.Namespace) -> int:
    report = _library(args).scan_report(with_hashes=args.hashes)
    if args.skipped:
        return _print_skipped(report.skipped, as_json=args.json)
    entries = report.entries
    if args.json:
        print(json.dumps([e.to_json_dict() for e in entries], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print("The shelf is empty. Add adapters with `styleshelf shelf import FILE…`.")
    for e in entries:
        i = e.info
        trig = f"  trigger: {i.trigger_phrase}" if i.trigger_phrase else ""
        hashes = f"  {i.autov2}" if i.autov2 else ""
        flag = f"  ⚠ {'; '.join(e.warnings)}" if e.warnings else ""
        print(f"• {e.name:<28} [{e.folder}] {i.title!r} {i.family} r{i.rank}{hashes}{trig}{flag}")
    for kind, path in _library(args).stack_files():  # house-style stack files, beside the adapters
        print(f"▤ {path.name:<28} [{kind}] stack file (`styleshelf shelf stack show {path}`)")
    if report.skipped:
        n = len(report.skipped)
        print(f"{n} file{'s' if n != 1 else ''} skipped: not adapters (run with --skipped to see why)")
    return 0


def _print_skipped(skipped: list, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps([s.to_json_dict() for s in skipped], indent=2, ensure_ascii=False))
        return 0
    if not skipped:
        print("No file was skipped.")
    for s in skipped:
        print(f"✗ {s.path}\n    {s.reason}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.engine.adapters import read_adapter_info, read_lora_modules, tag_frequency
    from app.engine.shelf.library import OUTSIDE

    lib = _library(args)
    path = Path(args.file)
    info = read_adapter_info(path if path.is_file() else lib.find(args.file).path)  # raises with the reason
    _, modules = read_lora_modules(info.path)  # the deep check: values finite, pairs complete
    scales = sorted({round(m.scale, 6) for m in modules.values()})
    strength = _strength(modules, args.base)
    report = info.to_json_dict(with_metadata=True)
    report.update({
        "checks": {"tensors_finite": True, "pairs_complete": True, "modules": len(modules)},
        "scales": scales,
        "strength": strength.to_json_dict(),
        "compatibility": _compatibility(info),
        "on_shelf": lib.kind_of(Path(info.path)) != OUTSIDE,
        "top_tags": dict(list(tag_frequency(info).items())[:10]),
    })  # fmt: skip
    if args.base:
        from app.engine.adapters.fit import adapter_fit

        fit = adapter_fit(info.path, args.base)
        report["fits_base"] = {
            "base": Path(args.base).name,
            "fits": fit.fits,
            "layers_checked": fit.checked,
            "reason": fit.reason,
        }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"{info.title}  ({Path(info.path).name}, {_human_size(info.file_size)})")
    rows = [
        ("family", f"{info.family} — {info.family_reason}"),
        ("layout", info.layout), ("format", info.algorithm),
        ("rank", f"{info.rank} (all: {', '.join(map(str, info.ranks))})"),
        ("modules", ", ".join(f"{k}: {v}" for k, v in info.components.items())),
        ("scale α/r", ", ".join(f"{s:g}" for s in scales)),
        ("update size", strength.summary()),
        ("trigger", info.trigger_phrase), ("description", info.description), ("author", info.author),
        ("date", info.date), ("tags", ", ".join(info.tags)),
        ("thumbnail", f"{info.thumbnail_mime}, {len(info.thumbnail)} bytes" if info.thumbnail else ""),
        ("AutoV2", info.autov2), ("sha256", info.sha256), ("tensor sha256", info.tensor_sha256),
        ("A1111 hash", info.short_hash), ("compatibility", report["compatibility"]),
        ("checks", f"{len(modules)} modules, all values finite, down/up pairs complete"),
    ]  # fmt: skip
    for label, value in rows:
        if value:
            print(f"  {label:<14} {value}")
    for w in [*info.warnings, *strength.warnings]:
        print(f"  ⚠ {w}")
    if args.base:
        fit = report["fits_base"]
        verdict = f"yes ({fit['layers_checked']} layers checked)" if fit["fits"] else f"NO: {fit['reason']}"
        print(f"  {'fits ' + fit['base']:<14} {verdict}")
    return 0


def _strength(modules: dict, base: str | None):
    """The effective update per module (scale × up·down), against ``base``'s layers when one is given."""
    from app.engine.adapters import strength

    if not base:
        return strength.judge(modules)
    from app.engine.adapters.loader import base_layer_norms
    from app.engine.models.loading import load_base

    return strength.judge(modules, base_layer_norms(load_base(base).pipe))


def _compatibility(info) -> str:
    from app.engine.models.families import FAMILIES

    if info.family in FAMILIES:
        return f"for {FAMILIES[info.family].label} base models ({info.family_source}: {info.family_reason})"
    return f"base family unknown: {info.family_reason}; checked against the base when loaded"


def run_import(args: argparse.Namespace) -> int:
    results = _library(args).import_files(args.files)
    for r in results:  # every file's outcome, whatever happened to the others
        if r.status == "imported":
            print(f"imported {r.source.name} → {r.path}")
        else:
            print(f"{r.status}: {r.reason}", file=sys.stderr)
    if len(results) > 1:
        done = sum(r.status == "imported" for r in results)
        print(f"{done} of {len(results)} files imported", file=sys.stderr if done < len(results) else sys.stdout)
    return 0 if all(r.status == "imported" for r in results) else 2


def run_export(args: argparse.Namespace) -> int:
    dest = _library(args).export(args.name, args.dest, overwrite=args.force)
    print(f"exported to {dest}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    print(f"removed {_library(args).remove(args.name)}")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from app.engine.adapters import edit_metadata
    from app.engine.errors import UserError

    kwargs: dict = {"title": args.title, "trigger_phrase": args.trigger, "description": args.description}
    if args.no_thumbnail:
        kwargs["thumbnail"] = None
    elif args.thumbnail:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(args.thumbnail) as img:
                img.load()
                kwargs["thumbnail"] = img.copy()
        except (OSError, UnidentifiedImageError):
            raise UserError(f"{args.thumbnail}: not an image file.") from None
    info = edit_metadata(_library(args).find(args.file).path, **kwargs)
    print(f"updated {info.path} (AutoV2 now {info.autov2}; tensor hash unchanged)")
    return 0


def parse_weighted(spec: str) -> tuple[str, float]:
    """``NAME[:WEIGHT]`` or ``FILE[:WEIGHT]`` (bake, generate); a colon that is part of the name (``C:\\…``) is kept
    when no number follows."""
    name, sep, weight = spec.rpartition(":")
    if sep and name:
        try:
            return name, float(weight)
        except ValueError:
            pass
    return spec, 1.0


def run_bake(args: argparse.Namespace) -> int:
    from app.engine.errors import UserError
    from app.engine.events import Finished
    from app.engine.shelf.bake import bake
    from app.engine.shelf.stack import Stack, StackEntry

    if args.rank is not None and args.rank < 1:
        raise UserError(f"--rank must be at least 1 (got {args.rank}).")
    if args.mode == "svd" and args.rank is None:
        raise UserError("--mode svd needs --rank.")
    lib = _library(args)
    entries = []
    for spec in args.adapters:
        name, weight = parse_weighted(spec)
        entry = lib.find(name)
        if not entry.ok:
            raise UserError(f"{entry.path.name} cannot be baked: {entry.problem}")
        entries.append(StackEntry(str(entry.path), weight=weight, name=entry.name, sha256=entry.tensor_sha256))

    def show(event) -> None:
        if isinstance(event, Finished):
            s = event.summary
            print(f"baked {s['sources']} adapters into {event.output} ({s['modules']} modules, ranks {s['ranks']})")

    bake(Stack(entries), args.out, mode=args.mode, rank=args.rank, title=args.title, on_event=show)
    return 0


def run_from_checkpoint(args: argparse.Namespace) -> int:
    from app.engine.train.checkpoint_export import export_checkpoint, parse_step, run_paths

    step = parse_step(args.step)
    out = export_checkpoint(run_paths(args.run_dir)[0], step, args.out, title=args.title)
    print(f"wrote {out} (checkpoint at step {step})")
    return 0
