"""The narrow engine surface the desktop app talks to.

The GUI imports the engine only through this module, and this module imports torch, diffusers and the
heavier engine packages lazily inside its functions, so ``import app.engine.facade`` costs nothing at
start-up. It also turns the engine's richer records into small plain dataclasses the GUI can show
without knowing how the engine stores them. No Qt here (the engine never imports Qt).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.engine import paths
from app.engine.atomic import atomic_write_text
from app.engine.errors import UserError
from app.engine.events import (  # re-exported: the GUI sees events only through this module
    CancelToken,
    CheckpointSaved,
    Error,
    Event,
    Finished,
    ImageReady,
    Log,
    Preview,
    Progress,
    SampleReady,
    event_from_json,
)
from app.engine.generate.config import GenerateConfig  # light: what the Generate tab edits and a PNG restores
from app.engine.shelf.stack import Stack, StackEntry  # light dataclasses shared with the GUI

REPO_ROOT = paths.REPO_ROOT

__all__ = [
    "CancelToken", "CheckpointSaved", "Error", "Event", "Finished", "ImageReady", "Log", "Preview", "Progress",
    "SampleReady", "Stack", "StackEntry", "GenerateConfig", "UserError", "event_from_json", "REPO_ROOT",
]

# --------------------------------------------------------------------------------------------- base model


@dataclass
class BaseModelInfo:
    path: str
    family: str = ""  # sd1 | sd2 | sd2-v | sdxl, "" when unknown
    label: str = ""  # "SD 1.x", shown next to the picker
    error: str = ""  # one-line reason when the path is not a usable model
    resolution: int = 0  # the size the model was trained at (512 for SD1, 64 for the demo model)
    is_demo: bool = False  # the bundled demo model (the Train tab then suggests the "demo model" preset)


def default_base_model() -> str:
    """The bundled demo model when it is there, else nothing (the user picks one)."""
    demo = paths.DEMO_MODEL_DIR
    return str(demo) if (demo / "model_index.json").is_file() else ""


def inspect_base_model(path: str) -> BaseModelInfo:
    """Family of a diffusers folder or single-file checkpoint from its configs / header only (no torch)."""
    from app.engine.models.detect import inspect_model, native_resolution
    from app.engine.models.families import FAMILIES

    info = BaseModelInfo(path=path)
    try:
        info.family = inspect_model(path).family
        info.label = FAMILIES[info.family].label
        info.resolution = native_resolution(path)
        info.is_demo = Path(path).resolve() == paths.DEMO_MODEL_DIR.resolve()
    except UserError as err:
        info.error = str(err)
    return info


# -------------------------------------------------------------------------------------------- datasets


@dataclass
class DatasetEntry:
    path: str
    caption: str = ""
    skipped_reason: str = ""  # empty for usable images


@dataclass
class DatasetSummary:
    folder: str
    entries: list[DatasetEntry] = field(default_factory=list)

    @property
    def usable(self) -> int:
        return sum(1 for e in self.entries if not e.skipped_reason)

    @property
    def skipped(self) -> int:
        return len(self.entries) - self.usable


def scan_dataset(folder: str, *, min_side: int | None = None, max_pixels: int | None = None) -> DatasetSummary:
    """Every image file of ``folder``: usable ones with their caption, skipped ones with the reason.

    Captions are shown without the trigger word: that is what the user edits in the ``.txt`` sidecar.
    """
    from app.engine.train.dataset import scan_dataset as engine_scan

    limits = {k: v for k, v in (("min_side", min_side), ("max_pixels", max_pixels)) if v}
    report = engine_scan(Path(folder), **limits)
    summary = DatasetSummary(folder=str(folder))
    for item in getattr(report, "items", []):
        summary.entries.append(DatasetEntry(str(item.path), caption=_raw_caption(Path(item.path), item)))
    for item in getattr(report, "skipped", []):
        summary.entries.append(DatasetEntry(str(item.path), skipped_reason=str(getattr(item, "reason", "skipped"))))
    summary.entries.sort(key=lambda e: e.path)
    return summary


def _raw_caption(image: Path, item: Any) -> str:
    # Show what the user can edit: the sidecar text, not the caption with the trigger word prepended.
    sidecar = image.with_suffix(".txt")
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8", errors="replace").strip()
    return str(getattr(item, "caption", ""))


def write_caption(image_path: str, text: str) -> Path:
    """Save a caption to the image's ``.txt`` sidecar (atomically, so an edit never half-writes)."""
    sidecar = Path(image_path).with_suffix(".txt")
    atomic_write_text(sidecar, text.strip() + "\n")
    return sidecar


# -------------------------------------------------------------------------------------------- training

# Fields the Train tab sets outside the settings form (dataset and model pickers, output file).
_FORM_EXCLUDED = {"dataset_dir", "base", "out", "resume"}


def train_settings() -> list[Any]:
    """``configbase.Setting`` records for the training form (help, ranges, choices, advanced)."""
    from app.engine.configbase import describe
    from app.engine.train.config import TrainConfig

    return [s for s in describe(TrainConfig) if s.name not in _FORM_EXCLUDED]


def train_presets() -> dict[str, dict[str, Any]]:
    """Named presets ("fast style", "quality style") as field → value overrides."""
    from app.engine.train.config import TRAIN_PRESETS

    return {name: dict(values) for name, values in TRAIN_PRESETS.items()}


def new_adapter_path(name: str) -> Path:
    """Where a newly trained adapter goes: the user's shelf folder, so it appears on the shelf."""
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in name).strip().replace(" ", "-") or "style"
    return adapters_dir() / f"{safe}.safetensors"


def adapters_dir() -> Path:
    return paths.user_data_dir() / "adapters"


def train_child_argv(
    dataset: str, base: str, out: str, values: dict[str, Any], *, run_dir: Path, resume: bool = False
) -> list[str]:
    """The child-process command line: ``python -m app.cli train … --json-events --config RUN.toml``.

    Every form value goes through a TOML run file so advanced settings need no CLI flag of their own.
    """
    import tomli_w

    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "run.toml"
    clean = {k: v for k, v in values.items() if v is not None and k not in _FORM_EXCLUDED}
    atomic_write_text(config_file, tomli_w.dumps(clean))
    argv = [sys.executable, "-m", "app.cli", "train", dataset, "--base", base, "--out", out]
    argv += ["--config", str(config_file), "--json-events"]
    if resume:
        argv.append("--resume")
    return argv


# ------------------------------------------------------------------------------------------ the shelf


@dataclass
class AdapterCard:
    path: str
    title: str
    trigger: str = ""
    family: str = ""
    thumbnail_png: bytes | None = None
    sha256: str = ""
    autov2: str = ""
    problem: str = ""  # a refused or suspicious file keeps its card with the reason
    has_text_encoder: bool = False  # carries text-encoder LoRA too (the card then offers its own weight)


_extra_adapter_folders: tuple[str, ...] = ()


def set_extra_adapter_folders(folders: list[str]) -> None:
    """Folders listed on the shelf beside the user's own and the bundled styles (a team share, ComfyUI's
    ``models/loras``…), on top of ``STYLESHELF_ADAPTER_PATH``. The GUI sets them from its preferences."""
    global _extra_adapter_folders
    _extra_adapter_folders = tuple(str(f) for f in folders if str(f).strip())


def _library():
    from app.engine.shelf.library import Library

    return Library.default(_extra_adapter_folders)


def list_adapters() -> list[AdapterCard]:
    """Every adapter on the shelf; a file that cannot be read keeps a card with the reason."""
    return [_card(info) for info in _library().scan()]


def adapter_card(path: str) -> AdapterCard:
    from app.engine.adapters import read_adapter_info

    return _card(read_adapter_info(Path(path)))


def _card(info: Any) -> AdapterCard:
    family = str(getattr(info, "family", "") or "")
    warnings = getattr(info, "warnings", None) or []
    return AdapterCard(
        path=str(info.path),
        title=str(getattr(info, "title", "") or Path(info.path).stem),
        trigger=str(getattr(info, "trigger_phrase", "") or ""),
        family="" if family == "unknown" else family,
        thumbnail_png=_thumbnail_bytes(getattr(info, "thumbnail", None)),
        # The tensor-only hash: what stacks and PNGs record (it survives metadata edits and renames).
        sha256=str(getattr(info, "tensor_sha256", "") or ""),
        autov2=str(getattr(info, "autov2", "") or ""),
        problem=str(getattr(info, "problem", "") or "; ".join(map(str, warnings))),
        has_text_encoder=any(part.startswith("text_encoder") and count
                             for part, count in (getattr(info, "components", None) or {}).items()),
    )


def _thumbnail_bytes(thumbnail: Any) -> bytes | None:
    if not thumbnail:
        return None
    if isinstance(thumbnail, bytes):
        return thumbnail
    text = str(thumbnail)
    if text.startswith("data:") and "," in text:
        import base64

        return base64.b64decode(text.split(",", 1)[1])
    return None


def import_adapters(files: list[str]) -> tuple[list[AdapterCard], list[str]]:
    """Copy files onto the shelf; returns the imported cards and one line per refused file."""
    cards, problems = [], []
    for f in files:
        try:
            cards.append(_import_one(Path(f)))
        except UserError as err:
            name = Path(f).name
            problems.append(str(err) if str(err).startswith(name) else f"{name}: {err}")
    return cards, problems


def _import_one(src: Path) -> AdapterCard:
    return _card(_library().import_file(src))


def export_adapter(path: str, dest: str) -> None:
    _library().export(Path(path), Path(dest))


def remove_adapter(path: str) -> None:
    _library().remove(Path(path))


def edit_adapter_metadata(path: str, *, title: str, trigger: str, thumbnail_image: str | None = None) -> AdapterCard:
    """Rewrite title / trigger (and optionally the thumbnail, from an image file) in place, atomically."""
    from app.engine.adapters import edit_metadata

    kwargs: dict[str, Any] = {"title": title, "trigger_phrase": trigger}
    if thumbnail_image:
        from PIL import Image

        with Image.open(thumbnail_image) as img:
            kwargs["thumbnail"] = img.convert("RGB")
    edit_metadata(Path(path), **kwargs)
    return adapter_card(path)


def list_stack_presets() -> list[str]:
    return list(_library().list_presets())


def save_stack_preset(name: str, stack: Any) -> None:
    _library().save_preset(name, stack)


def load_stack_preset(name: str) -> Any:
    return _library().load_preset(name)


def bake_stack(stack: Any, out: str, rank: int | None = None) -> AdapterCard:
    from app.engine.shelf.bake import bake

    bake(stack, Path(out), rank=rank)
    return adapter_card(out)


# ------------------------------------------------------------------------------------------ generation


def sampler_names() -> list[str]:
    from app.engine.generate.samplers import SAMPLER_NAMES

    return list(SAMPLER_NAMES)


def read_png_parameters(path: str) -> GenerateConfig:
    """Prompt, settings and stack from a StyleShelf or AUTOMATIC1111 PNG.

    Adapters are matched to shelf files later (by tensor hash, then name); an entry whose file is not
    known keeps ``path=""`` so the GUI can say which style is missing.
    """
    from app.engine.generate.pngmeta import read_png_parameters as engine_read

    settings, entries = engine_read(Path(path), lookup=_shelf_lookup)
    params = GenerateConfig()
    for name, value in settings.items():
        if hasattr(params, name) and value is not None:
            setattr(params, name, value)
    params.stack = list(entries)
    return params


def _shelf_lookup(ref: Any) -> str | None:
    """A PNG's adapter reference → the shelf file with the same weights (hash), else by name."""
    lib = _library()
    if ref.sha256:
        found = lib.find_by_hash(ref.sha256)
        if found is not None:
            return str(found.path)
    try:
        return str(lib.find(ref.name).path) if ref.name else None
    except UserError:
        return None


class GenerationSession:
    """One loaded base pipeline kept for many generations (lives on the GUI's worker thread)."""

    def __init__(self, base_path: str) -> None:
        from app.engine.generate import Generator

        self.base_path = base_path
        self._generator = Generator(base_path)

    def generate(
        self, params: GenerateConfig, out_dir: str, *, on_event: Callable[[Event], None], cancel: CancelToken
    ) -> list[Any]:
        config = dataclasses.replace(
            params, sampler=params.sampler or sampler_names()[0], out_dir=out_dir, stack=list(params.stack)
        )
        return self._generator.generate(config, on_event=on_event, cancel=cancel)


def gallery_dir() -> Path:
    return paths.user_data_dir() / "images"


# ------------------------------------------------------------------------------------------ comparison grids


def grid_config(x: str, y: str = "", z: str = "", *, generate: GenerateConfig, out: str = "") -> Any:
    """A grid's settings (``app.engine.generate.grid_plan.GridConfig``); the axes are checked here (UserError)."""
    from app.engine.generate.grid_axes import parse_axes
    from app.engine.generate.grid_plan import GridConfig

    parse_axes(x, y, z)
    return GridConfig(x=x, y=y, z=z, out=out, generate=generate)


def run_comparison(session: GenerationSession, config: Any, *, on_event: Callable[[Event], None],
                   cancel: CancelToken) -> Any:  # fmt: skip
    """Render a grid with the session's loaded base (events: GridStarted, Progress, ImageReady, Finished)."""
    from app.engine.generate.grid import run_grid

    config.generate = dataclasses.replace(config.generate, sampler=config.generate.sampler or sampler_names()[0])
    return run_grid(config, generator=session._generator, on_event=on_event, cancel=cancel)


def read_grid_png(path: str) -> Any:
    """The comparison stored in a grid PNG (``GridRecord``: config with the stack found on the shelf, labels,
    cells), or None for any other image."""
    from app.engine.generate.grid import read_grid

    return read_grid(Path(path), lookup=_shelf_lookup)


def keep_checkpoint(adapter: str, step: int) -> str:
    """Make training checkpoint ``step`` the style's adapter file on the shelf; returns its path."""
    from app.engine.train.checkpoint_export import keep_checkpoint as keep

    return str(keep(adapter, step))


def checkpoint_axes(adapter: str, captions: list[str], trigger: str = "", prompts: int = 3) -> tuple[str, str]:
    """X and Y of "Compare checkpoints": the base then every kept checkpoint, × a few of the dataset's captions."""
    import csv
    import io

    if not trigger and Path(adapter).is_file():  # the run's own trigger, as the adapter file records it
        trigger = adapter_card(adapter).trigger
    picked = list(dict.fromkeys(c.strip() for c in captions if c and c.strip()))[:prompts]  # distinct, in order
    texts = [f"{trigger}, {c}" if trigger and trigger.lower() not in c.lower() else c for c in picked]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(texts)
    return f"checkpoint:{adapter}=base,all", (f"prompt={buffer.getvalue()}" if texts else "")


def axis_kind_and_target(spec: str) -> tuple[str, str]:
    """("checkpoint", "path/to/style.safetensors") for ``checkpoint:path/to/style.safetensors=…``; ("", "") if bad."""
    from app.engine.generate.grid_axes import parse_axis

    try:
        axis = parse_axis(spec)
    except UserError:
        return "", ""
    return axis.kind, axis.target


def validate_checkpoints(adapter: str) -> dict[int, tuple[float, float]]:
    """Held-out loss (base, adapter) of each kept checkpoint of ``adapter``'s run, as the run measures it."""
    from app.engine.train.checkpoint_validation import validate_checkpoints as measure

    return measure(adapter)
