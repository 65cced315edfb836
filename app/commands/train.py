"""`styleshelf train DATASET_DIR --base MODEL --out ADAPTER.safetensors …` — train a LoRA style adapter.

Default output is a tqdm bar and log lines on stderr. ``--json-events`` prints one JSON event per line
on stdout and nothing else (the GUI runs training as a child process through it). SIGTERM or a first
Ctrl-C cancels: the current step finishes, a checkpoint and the adapter so far are saved.
Works under ``torchrun``/``accelerate launch`` (only rank 0 prints events and writes files).
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from app.commands.setting_flags import add_setting_flags

    # No torch: the settings' dataclass only (read here, not at import, so a test can swap in a subclass).
    from app.engine.train import config as train_config

    p = sub.add_parser(
        "train",
        help="Train a LoRA style adapter on a folder of images.",
        description="Train a LoRA style adapter on a folder of images. Every setting is a flag "
        "(from the training settings; --set KEY=VALUE and a --config file take them too).",
    )
    p.add_argument("dataset_dir", metavar="DATASET_DIR", nargs="?", help="folder of images (+ .txt captions)")
    p.add_argument("--config", metavar="RUN.toml", help="settings file (flags given here override it)")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help=f"start from a preset: {', '.join(repr(n) for n in train_config.TRAIN_PRESETS)}",
    )
    add_setting_flags(p, train_config.TrainConfig, advanced_title="advanced settings")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by its name, e.g. --set lr_schedule=cosine (repeatable)",
    )
    p.add_argument("--scan-only", action="store_true", help="only check the dataset and print the report")
    p.add_argument("--json-events", action="store_true", help="one JSON event per line on stdout (for the GUI)")
    p.add_argument(
        "--export-checkpoints",
        action="store_true",
        help="also write every kept checkpoint as an adapter file (<name>-step-N.safetensors, in the "
        "run's .checkpoints folder)",
    )
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from app.commands.setting_flags import setting_values
    from app.engine.configbase import from_dict, parse_value, settings_of
    from app.engine.errors import UserError
    from app.engine.train import config as train_config

    cls = train_config.TrainConfig
    overrides = setting_values(cls, args)
    if args.dataset_dir:
        overrides["dataset_dir"] = args.dataset_dir
    settings = settings_of(cls)
    for item in args.set:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in settings:
            raise UserError(
                f"--set {item!r}: expected KEY=VALUE with a known setting name.", hint=f"Known: {', '.join(settings)}."
            )
        overrides[key] = parse_value(raw, settings[key], where=f"--set {key}")
    if args.config:
        return train_config.load_toml(args.config, preset=args.preset, **overrides)
    if args.preset:
        return train_config.config_from_preset(args.preset, **overrides)

    if "resolution" not in overrides and overrides.get("base"):
        # Like the Train tab: train at the size the base model draws (64 px demo model, 1024 SDXL), not 512.
        from app.engine.models.detect import native_resolution

        try:
            overrides["resolution"] = native_resolution(overrides["base"])
        except UserError:
            pass  # a missing or wrong base is reported by training itself, after the dataset checks

    return from_dict(cls, overrides)


def run(args: argparse.Namespace) -> int:
    import signal

    from app.engine.events import CancelToken

    config = build_config(args)
    if args.scan_only:
        return _scan_only(config, args.json_events)
    real_stdout = sys.stdout
    if args.json_events:
        # Libraries occasionally print; on the event channel that would be a corrupt line for the GUI.
        sys.stdout = sys.stderr
    cancel = CancelToken()

    def request_cancel(signum, _frame):
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        cancel.cancel()
        print("styleshelf: stopping after this step and saving…", file=sys.stderr)

    previous = {sig: signal.signal(sig, request_cancel) for sig in (signal.SIGTERM, signal.SIGINT)}
    from app.engine.events import json_event_printer

    on_event = json_event_printer(real_stdout) if args.json_events else _TerminalPrinter()
    from app.engine.train import train

    try:
        result = train(config, on_event=on_event, cancel=cancel)
    finally:
        sys.stdout = real_stdout
        for sig, handler in previous.items():  # run() is also called in-process (tests, scripts)
            signal.signal(sig, handler)
        if isinstance(on_event, _TerminalPrinter):
            on_event.close()
    if not args.json_events and result.adapter is not None:
        s = result.summary
        # A cancelled run skipped validation: no losses to show.
        losses = (
            f"; validation loss {s.validation_loss_base:.4f} → {s.validation_loss_adapter:.4f}"
            if s.validation_loss_base is not None and s.validation_loss_adapter is not None
            else ""
        )
        print(f"wrote {result.adapter} ({result.steps} steps{', cancelled' if result.cancelled else ''}{losses})")
    if args.export_checkpoints and result.adapter is not None:
        from app.engine.train.checkpoint_export import report_exports

        report_exports(result.adapter, on_event=on_event if args.json_events else _print_message)
    return 0


def _print_message(event) -> None:
    print(event.message, flush=True)


class _TerminalPrinter:
    """A tqdm bar for steps (and caching), log lines above it; everything on stderr."""

    def __init__(self) -> None:
        self.bar = None
        self.phase = ""

    def __call__(self, event) -> None:
        from tqdm import tqdm

        kind = event.kind
        if kind == "progress":
            if self.bar is None or self.phase != event.phase:
                self.close()
                self.phase = event.phase
                self.bar = tqdm(
                    total=event.total,
                    desc=event.phase,
                    unit="step" if event.phase == "train" else "img",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
                self.bar.n = 0
            self.bar.n = event.step
            if event.loss is not None:
                self.bar.set_postfix(loss=f"{event.loss:.4f}", avg=f"{event.smoothed_loss:.4f}", refresh=False)
            self.bar.refresh()
            if event.step >= event.total:
                self.close()  # later log lines print below a finished bar, not through it
        elif kind == "log":
            self._write(("warning: " if event.level == "warning" else "") + event.message)
        elif kind == "checkpoint":
            self._write(f"checkpoint saved: {event.path}")
        elif kind == "sample":
            self._write("samples: " + ", ".join(event.paths))
        # Error events are not echoed: the CLI prints the one-line reason itself.

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr) if self.bar is not None else print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _scan_only(config, as_json: bool) -> int:
    import json

    from app.engine.train.dataset import scan_training_set

    if not config.dataset_dir:
        from app.engine.errors import UserError

        raise UserError("No dataset folder given.", hint="Pass DATASET_DIR.")
    report = scan_training_set(config)
    if as_json:
        print(
            json.dumps(
                {
                    "items": [
                        {
                            "path": str(i.path),
                            "caption": i.caption,
                            "caption_source": i.caption_source,
                            "width": i.width,
                            "height": i.height,
                            "mode": i.mode,
                        }
                        for i in report.items
                    ],
                    "skipped": [{"path": str(s.path), "reason": s.reason} for s in report.skipped],
                    "tag_frequency": report.tag_frequency,
                }
            )
        )
    else:
        print(report.summary())
    report.require_usable()
    return 0
