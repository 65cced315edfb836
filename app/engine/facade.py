"""The narrow engine surface the desktop app talks to.

The GUI imports the engine only through this module, and this module imports torch, diffusers and the
heavier engine packages lazily inside its functions, so ``import app.engine.facade`` costs nothing at
start-up. It also turns the engine's richer records into small plain dataclasses the GUI can show
without knowing how the engine stores them. No Qt here (the engine never imports Qt).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.engine import paths
from app.engine.atomic import atomic_write_bytes, atomic_write_text
from app.engine.errors import UserError
from app.engine.events import (  # re-exported: the GUI sees events only through this module
    CancelToken,
    CheckpointSaved,
    Error,
    Event,
    Finished,
    ImageReady,
    Level,
    Log,
    Phase,
    Preview,
    Progress,
    SampleReady,
    TrainFinished,
    TrainSummary,
    event_from_json,
    train_event_from_json,
)
from app.engine.generate.config import (  # the input panel's choices
    INPAINT_AREAS,
    MASKED_CONTENT,
    RESIZE_MODES,
    GenerateConfig,  # light: what the Generate tab edits and a PNG restores
)
from app.engine.shelf.names import adapter_file_name
from app.engine.shelf.stack import Stack, StackEntry  # light dataclasses shared with the GUI

REPO_ROOT = paths.REPO_ROOT

__all__ = [
    "CancelToken",
    "CheckpointSaved",
    "Error",
    "Event",
    "Finished",
    "ImageReady",
    "Log",
    "Preview",
    "Progress",
    "SampleReady",
    "Stack",
    "StackEntry",
    "GenerateConfig",
    "UserError",
    "event_from_json",
    "REPO_ROOT",
    "Level",
    "Phase",
    "TrainFinished",
    "TrainSummary",
    "train_event_from_json",
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
        detection = inspect_model(path)
        info.family = detection.family
        info.label = FAMILIES[info.family].label
        if detection.details.get("inpainting"):  # a 9-channel UNet: say so next to the picker
            info.label += " inpainting"
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


def generate_settings() -> dict[str, Any]:
    """``configbase.Setting`` records of the Generate tab's settings by name: its widgets take their range,
    step, default and tooltip from these, so the form and the CLI cannot drift apart."""
    from app.engine.configbase import settings_of

    return settings_of(GenerateConfig)


def generate_form_settings(placed: Any) -> list[Any]:
    """The Generate settings a form is built from: every one but those the tab ``placed`` by hand and those
    marked ``form=False``, so a new GenerateConfig field is a widget with no GUI edit."""
    return [s for s in generate_settings().values() if s.form and s.name not in set(placed)]


def parse_setting_value(text: str, setting: Any) -> Any:
    """Text typed in a form field → the setting's type (the parser the CLI and TOML files use); UserError
    naming the setting when it is not a value of that type."""
    from app.engine.configbase import parse_value

    return parse_value(text, setting)


def checked_setting_value(value: Any, setting: Any) -> Any:
    """A stored value (a session's) as the setting's type, checked against its type, range and choices;
    UserError when it is not a legal value of the setting."""
    from app.engine.configbase import check_value, coerce

    value = coerce(value, setting)
    check_value(value, setting)
    return value


def train_presets() -> dict[str, dict[str, Any]]:
    """Named presets ("fast style", "quality style") as field → value overrides."""
    from app.engine.train.config import TRAIN_PRESETS

    return {name: dict(values) for name, values in TRAIN_PRESETS.items()}


def new_adapter_path(name: str) -> Path:
    """Where a newly trained adapter goes: the user's shelf folder, so it appears on the shelf."""
    return adapters_dir() / adapter_file_name(name)


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


def train_resume_point(adapter_out: str) -> dict[str, Any] | None:
    """What Resume would continue from for the run writing ``adapter_out``: ``{"step", "total", "path",
    "losses"}`` read from its newest checkpoint (JSON only, no torch), or None when it has none."""
    from app.engine.train.run_state import resume_point

    out = Path(adapter_out)
    return resume_point(out.with_name(out.stem + ".checkpoints"))


def use_sample_as_thumbnail(adapter_path: str, sample_png: str) -> AdapterCard:
    """Make a training sample (its adapter half) the adapter's shelf picture."""
    from app.engine.adapters import edit_metadata
    from app.engine.train.sampling import adapter_half, thumbnail_of

    edit_metadata(Path(adapter_path), thumbnail=thumbnail_of(adapter_half(Path(sample_png))))
    return adapter_card(adapter_path)


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
    # Working as a team (app.engine.author): who made it, when and by whom it last changed, which folder.
    author: str = ""
    changed: str = ""  # ISO date from the metadata (last edit, else creation)
    changed_by: str = ""
    folder: str = ""  # the folder the file is in, so two files with the same title are told apart
    missing: bool = False  # the file vanished from its folder (the card stays, saying so)

    @property
    def byline(self) -> str:
        """ "by Ana · changed 2026-12-01 by Ben · team-share": one line for the card."""
        parts = [f"by {self.author}"] if self.author else []
        if self.changed:
            who = f" by {self.changed_by}" if self.changed_by and self.changed_by != self.author else ""
            parts.append(f"changed {self.changed[:10]}{who}")
        if self.folder:
            parts.append(Path(self.folder).name or self.folder)
        return " · ".join(parts)


_extra_adapter_folders: tuple[str, ...] = ()


def set_extra_adapter_folders(folders: list[str]) -> None:
    """Folders listed on the shelf beside the user's own and the bundled styles (a team share, ComfyUI's
    ``models/loras``…), on top of ``STYLESHELF_ADAPTER_PATH``. The GUI sets them from its preferences."""
    global _extra_adapter_folders
    _extra_adapter_folders = tuple(str(f) for f in folders if str(f).strip())


def _library():
    from app.engine.shelf.library import Library

    return Library.default(_extra_adapter_folders)


@dataclass
class SkippedAdapterFile:
    """A ``.safetensors`` file in a shelf folder that is not listed (checkpoint internals, other models,
    damaged files), with the one-line reason."""

    path: str
    reason: str


@dataclass
class ShelfListing:
    cards: list[AdapterCard]
    skipped: list[SkippedAdapterFile]


def list_shelf() -> ShelfListing:
    """The adapters on the shelf, and the files skipped as not adapters (with why)."""
    report = _library().scan_report()
    return ShelfListing([_card(e) for e in report.entries],
                        [SkippedAdapterFile(str(s.path), s.reason) for s in report.skipped])  # fmt: skip


def list_adapters() -> list[AdapterCard]:
    """Every adapter on the shelf (files that are not adapters: ``list_shelf().skipped``)."""
    return list_shelf().cards


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
        has_text_encoder=any(
            part.startswith("text_encoder") and count
            for part, count in (getattr(info, "components", None) or {}).items()
        ),
        **_team_fields(info),
    )


def _team_fields(info: Any) -> dict[str, Any]:
    from app.engine.author import last_change

    inner = getattr(info, "info", None) or info  # a LibraryEntry wraps an AdapterInfo (None when refused)
    author = str(getattr(inner, "author", "") or "")
    changed, by = last_change(getattr(inner, "metadata", None) or {}, author, str(getattr(inner, "date", "") or ""))
    return {"author": author, "changed": changed, "changed_by": by, "folder": str(Path(info.path).parent)}


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
    """Copy files onto the shelf; returns the imported cards and, per refused file, its reason on the first line
    (what to do) followed by any technical details on further lines."""
    cards, problems = [], []
    for f in files:
        try:
            cards.append(_import_one(Path(f)))
        except UserError as err:
            name = Path(f).name
            reason = str(err) if str(err).startswith(name) else f"{name}: {err}"
            problems.append(f"{reason}\n    {err.details}" if err.details else reason)
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


def read_png_parameters(path: str, *, find_adapters: bool = True) -> GenerateConfig:
    """Prompt, settings and stack from a StyleShelf or AUTOMATIC1111 PNG.

    Adapters are matched to shelf files later (by tensor hash, then name); an entry whose file is not
    known keeps ``path=""`` so the GUI can say which style is missing. ``find_adapters=False`` skips that
    matching (a hash scan of the shelf, ~50 ms) when only the names and strengths are wanted (gallery labels).
    """
    return read_png_restore(path, find_adapters=find_adapters)[0]


def read_png_restore(path: str, *, find_adapters: bool = True) -> tuple[GenerateConfig, list[str]]:
    """``read_png_parameters`` plus one line per input picture (img2img / inpainting) the PNG names but this
    machine lacks or has changed since: the mode and settings come back, the picture must be picked again."""
    from app.engine.generate.input_meta import MISSING_KEY
    from app.engine.generate.pngmeta import read_png_parameters as engine_read

    settings, entries = engine_read(Path(path), lookup=_shelf_lookup if find_adapters else None)
    params = GenerateConfig()
    for name, value in settings.items():
        if hasattr(params, name) and value is not None:
            setattr(params, name, value)
    params.stack = list(entries)
    return params, list(settings.get(MISSING_KEY, []))


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


# --------------------------------------------------------------------------------- working as a team


def shelf_folders() -> list[str]:
    """Every folder the shelf lists (the user's, the bundled styles, the extra ones): what the app watches."""
    return [str(folder) for _kind, folder in _library().folders()]


def adapter_cards(paths: list[str]) -> list[AdapterCard]:
    """Fresh cards for files that appeared or changed; a file that cannot be read keeps a card with the reason."""
    from app.engine.adapters import read_adapter_info

    cards = []
    for path in paths:
        try:
            cards.append(_card(read_adapter_info(Path(path))))
        except (UserError, OSError) as err:
            cards.append(
                AdapterCard(path=str(path), title=Path(path).stem, problem=str(err), folder=str(Path(path).parent))
            )
    return cards


def missing_card(card: AdapterCard) -> AdapterCard:
    """The card of a file that vanished: it stays on the shelf (and in a stack) saying so."""
    return dataclasses.replace(
        card,
        missing=True,
        problem=f"The file is gone from {card.folder or 'its folder'} "
        "(deleted, renamed or not synced); left out of images.",
    )


def get_author_name() -> str:
    from app.engine.author import get_author

    return get_author()


def set_author_name(name: str) -> str:
    from app.engine.author import set_author

    return set_author(name)


def stack_version_notes(entries: list[StackEntry]) -> list[str]:
    """For a stack restored from a PNG or a preset: "made with an earlier version of ink-house" when the file
    now under that name has other weights than the record (the old version is named when still on the shelf)."""
    from app.engine.shelf.versions import resolve_entries

    recorded = [e for e in entries if e.sha256]
    if not recorded:
        return []
    return [r.note for r in resolve_entries(recorded, _library().scan()) if r.note and r.how != "missing"]


def is_stack_file(path: str) -> bool:
    return str(path).lower().endswith(".stack.json")


def list_stack_files() -> list[str]:
    """House-style stack files in the shelf folders (shown beside the adapters)."""
    return [str(path) for _kind, path in _library().stack_files()]


def save_stack_file(folder: str, title: str, entries: list[StackEntry], description: str = "") -> Path:
    """The current stack as ``<title>.stack.json`` in ``folder`` (a shelf folder the team shares)."""
    from app.engine.shelf.stack_file import save_stack_file as engine_save

    return engine_save(folder, title, entries, description=description, overwrite=True)


def open_stack_file(path: str) -> tuple[str, list[StackEntry], list[str]]:
    """(title, entries resolved against the shelf, notes: older versions and what is missing)."""
    from app.engine.shelf.stack_file import open_stack_file as engine_open

    stack, resolutions = engine_open(path, _library())
    return stack.title, [r.entry for r in resolutions if r.entry.path], [r.note for r in resolutions if r.note]


_changed_files: set[str] = set()
_changed_lock = threading.Lock()


def adapter_files_changed(paths: list[str]) -> None:
    """Files on the shelf changed or vanished: their loaded weights are dropped before the next image."""
    with _changed_lock:
        _changed_files.update(str(p) for p in paths)


def _take_changed_files() -> list[str]:
    with _changed_lock:
        paths = sorted(_changed_files)
        _changed_files.clear()
    return paths


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
        for path in _take_changed_files():  # on this (the worker) thread, between images: never mid-image
            self._generator.adapters.forget_path(path)
        return self._generator.generate(config, on_event=on_event, cancel=cancel)

    def prepare_stack(self, stack: list[StackEntry]) -> bool:
        """A toggle or reweight on the shelf: the next image's re-patch starts now, in the background.
        Safe to call from the UI thread while an image is being made; returns at once."""
        return self._generator.prepare_stack(list(stack))

    def restyle_folder(
        self,
        params: GenerateConfig,
        in_dir: str,
        out_dir: str,
        *,
        on_event: Callable[[Event], None],
        cancel: CancelToken,
    ) -> list[Any]:
        """Batch restyle: every picture of ``in_dir`` with the same stack, strength and seed into ``out_dir``."""
        from app.engine.generate.batch import restyle_folder

        config = dataclasses.replace(params, sampler=params.sampler or sampler_names()[0], stack=list(params.stack))
        return restyle_folder(self._generator, config, in_dir, out_dir, on_event=on_event, cancel=cancel)


def input_pictures_dir() -> Path:
    """Pasted pictures and painted masks: kept (not a cache) because PNGs made from them name them (by hash)."""
    from app.engine.generate.recent_inputs import inputs_dir

    return inputs_dir()


def png_has_parameters(path: str) -> bool:
    """Whether a PNG carries generation settings (dropping it restores them) or is just a picture."""
    from app.engine.generate.pngmeta import A1111_CHUNK, OUR_CHUNK, read_png_text

    try:
        text = read_png_text(path)
    except UserError:
        return False
    return A1111_CHUNK in text or OUR_CHUNK in text


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
