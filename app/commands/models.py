"""`styleshelf models …` — build tiny offline models and inspect base models."""

from __future__ import annotations

import argparse

FAMILY_CHOICES = ("sd15", "sd2", "sd2-v", "sdxl")
# Names of the loading families (app.engine.models.families), for --family overrides.
LOAD_FAMILY_CHOICES = ("sd1", "sd2", "sd2-v", "sdxl")


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
    tiny.add_argument(
        "--inpainting",
        action="store_true",
        help="give it a 9-channel inpainting UNet (latents + mask + masked-picture latents)",
    )
    tiny.set_defaults(func=run_make_tiny)

    info = models_sub.add_parser(
        "info", help="Say what a base model is (family, layout, prediction type) without loading its weights."
    )
    info.add_argument("path", metavar="PATH", help="a diffusers folder or a single-file .safetensors checkpoint")
    info.add_argument("--load", action="store_true", help="also load it fully (checks every tensor is there)")
    info.add_argument("--family", choices=LOAD_FAMILY_CHOICES, help="override detection (sd2 vs sd2-v)")
    info.add_argument("--config", metavar="FOLDER", help="diffusers folder whose configs a single file uses")
    info.set_defaults(func=run_info)

    single = models_sub.add_parser(
        "to-single-file", help="Export a diffusers folder as one A1111/ComfyUI-layout .safetensors checkpoint."
    )
    single.add_argument("folder", metavar="FOLDER")
    single.add_argument("out", metavar="OUT.safetensors")
    single.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    single.add_argument("--family", choices=LOAD_FAMILY_CHOICES, help="override detection (sd2 vs sd2-v)")
    single.set_defaults(func=run_to_single_file)


def run_make_tiny(args: argparse.Namespace) -> int:
    from app.engine.models.tiny import make_tiny

    out = make_tiny(args.out_dir, args.family, args.seed, inpainting=args.inpainting)
    print(f"wrote tiny {args.family}{' inpainting' if args.inpainting else ''} model to {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.engine.errors import ModelLoadError
    from app.engine.models.detect import inspect_model
    from app.engine.models.families import FAMILIES
    from app.engine.safetensors_file import read_header

    path = Path(args.path)
    det = inspect_model(path)
    family = args.family or det.family
    print(f"path:        {path}")
    print(f"layout:      {'single file (.safetensors)' if det.single_file else 'diffusers folder'}")
    print(f"family:      {family} ({FAMILIES[family].label}){'  [overridden]' if args.family else ''}")
    print(f"detected by: {det.reason}")
    print(f"prediction:  {FAMILIES[family].prediction_type if args.family else det.prediction_type}")
    print(f"pipeline:    {det.pipeline_class}")
    if det.single_file:
        header = read_header(path, error=ModelLoadError, strict=False)
        print(f"tensors:     {len(header.tensors)} ({header.data_size / 1e9:.2f} GB of data)")
        print(f"complete:    {'yes' if header.is_complete else 'NO (truncated)'}")
    if args.load:
        from app.engine.models.loading import load_base

        base = load_base(path, family=args.family, config=args.config)
        params = sum(p.numel() for p in base.pipe.unet.parameters())
        print(
            f"loaded:      yes, on {base.device} in {str(base.dtype).removeprefix('torch.')}; "
            f"UNet {params / 1e6:.1f} M parameters"
        )
    return 0


def run_to_single_file(args: argparse.Namespace) -> int:
    from app.engine.models.single_file import export_single_file

    dtype = None
    if args.fp16:
        import torch

        dtype = torch.float16
    export_single_file(
        args.folder, args.out, family=args.family, dtype=dtype, on_event=lambda e: print(getattr(e, "message", ""))
    )
    return 0
