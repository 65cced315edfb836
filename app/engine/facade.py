"""The narrow engine surface the desktop app talks to.

The GUI imports the engine only through this module, and this module imports torch, diffusers and the
heavier engine packages lazily inside its functions, so ``import app.engine.facade`` costs nothing at
start-up. It also turns the engine's richer records into small plain dataclasses the GUI can show
without knowing how the engine stores them. No Qt here (the engine never imports Qt).
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.engine import paths
from app.engine.atomic import atomic_write_text
from app.engine.errors import ModelLoadError, UserError
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
from app.engine.shelf.stack import Stack, StackEntry  # light dataclasses shared with the GUI

REPO_ROOT = paths.REPO_ROOT

__all__ = [
    "CancelToken", "CheckpointSaved", "Error", "Event", "Finished", "ImageReady", "Log", "Preview", "Progress",
    "SampleReady", "Stack", "StackEntry", "UserError", "event_from_json", "REPO_ROOT",
]

# --------------------------------------------------------------------------------------------- base model


@dataclass
class BaseModelInfo:
    path: str
    family: str = ""  # sd1 | sd2 | sd2-v | sdxl, "" when unknown
    label: str = ""  # "SD 1.x", shown next to the picker
    error: str = ""  # one-line reason when the path is not a usable model


def default_base_model() -> str:
    """The bundled demo model when it is there, else nothing (the user picks one)."""
    demo = paths.DEMO_MODEL_DIR
    return str(demo) if (demo / "model_index.json").is_file() else ""


def inspect_base_model(path: str) -> BaseModelInfo:
    """Family of a diffusers folder or single-file checkpoint from its configs / header only (no torch)."""
    from app.engine.models.families import FAMILIES

    info = BaseModelInfo(path=path)
    try:
        info.family = _detect_family(Path(path))
        info.label = FAMILIES[info.family].label
    except UserError as err:
        info.error = str(err)
    return info


def _detect_family(path: Path) -> str:
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.", hint="Pick a diffusers folder or a .safetensors file.")
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ModelLoadError(f"{path.name} is not a diffusers model folder (no model_index.json).")
        data = json.loads(index.read_text(encoding="utf-8"))
        if "XL" in str(data.get("_class_name", "")) or "text_encoder_2" in data:
            return "sdxl"
        unet_cfg = _read_json(path / "unet" / "config.json")
        sched_cfg = _read_json(path / "scheduler" / "scheduler_config.json")
        if unet_cfg.get("use_linear_projection") or unet_cfg.get("cross_attention_dim") == 1024:
            return "sd2-v" if sched_cfg.get("prediction_type") == "v_prediction" else "sd2"
        return "sd1"
    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError(
            f"{path.name} is not a .safetensors checkpoint.", hint="Pickled .ckpt files are refused for safety."
        )
    keys = _safetensors_keys(path)
    if any(k.startswith("conditioner.embedders.1") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.transformer") for k in keys) or any(k.startswith("model.diffusion") for k in keys):
        return "sd1"
    raise ModelLoadError(f"{path.name} does not look like a Stable Diffusion checkpoint.")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _safetensors_keys(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ModelLoadError(f"{path.name} has an oversized header; it is not a valid checkpoint.")
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError) as err:
        raise ModelLoadError(f"{path.name} is not a readable .safetensors file ({err}).") from err
    return [k for k in header if k != "__metadata__"]


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


def _library():
    from app.engine.shelf.library import Library

    return Library.default()


def list_adapters() -> list[AdapterCard]:
    return [_card(info) for info in _library().scan()]


def adapter_card(path: str) -> AdapterCard:
    from app.engine.shelf.library import read_adapter_info

    return _card(read_adapter_info(Path(path)))


def _card(info: Any) -> AdapterCard:
    return AdapterCard(
        path=str(info.path),
        title=str(getattr(info, "title", "") or Path(info.path).stem),
        trigger=str(getattr(info, "trigger_phrase", "") or ""),
        family=str(getattr(info, "family", "") or ""),
        thumbnail_png=_thumbnail_bytes(getattr(info, "thumbnail", None)),
        sha256=str(getattr(info, "sha256", "") or getattr(info, "tensor_sha256", "") or ""),
        autov2=str(getattr(info, "autov2", "") or ""),
        problem=str(getattr(info, "problem", "") or getattr(info, "error", "") or ""),
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
    lib, cards, problems = _library(), [], []
    for f in files:
        try:
            cards.append(_card(lib.import_file(Path(f))))
        except UserError as err:
            problems.append(f"{Path(f).name}: {err}")
    return cards, problems


def export_adapter(path: str, dest: str) -> None:
    _library().export(Path(path), Path(dest))


def remove_adapter(path: str) -> None:
    _library().remove(Path(path))


def edit_adapter_metadata(path: str, *, title: str, trigger: str, thumbnail_image: str | None = None) -> AdapterCard:
    from app.engine.shelf.library import edit_metadata

    edit_metadata(Path(path), title=title, trigger_phrase=trigger, thumbnail_image=thumbnail_image)
    return adapter_card(path)


def list_stack_presets() -> list[str]:
    return list(_library().list_presets())


def save_stack_preset(name: str, stack: Any) -> None:
    _library().save_preset(name, stack)


def load_stack_preset(name: str) -> Any:
    return _library().load_preset(name)


def bake_stack(stack: Any, out: str, rank: int | None = None) -> AdapterCard:
    from app.engine.shelf.library import bake

    bake(stack, Path(out), rank=rank)
    return adapter_card(out)


# ------------------------------------------------------------------------------------------ generation


@dataclass
class GenerationParams:
    """What the Generate tab edits; a PNG restores one of these plus a stack."""

    prompt: str = ""
    negative: str = ""
    seed: int | None = None
    steps: int = 20
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = ""
    batch_count: int = 1
    insert_triggers: bool = True
    stack: list[Any] = field(default_factory=list)  # StackEntry


def sampler_names() -> list[str]:
    try:
        from app.engine.generate import SAMPLERS
    except ImportError:
        return ["DPM++ 2M", "Euler a", "Euler", "DDIM"]
    return list(SAMPLERS)


def read_png_parameters(path: str) -> GenerationParams:
    """Prompt, settings and stack from a StyleShelf or AUTOMATIC1111 PNG."""
    from app.engine.generate import read_png_parameters as engine_read

    data = engine_read(Path(path))
    get = data.get if isinstance(data, dict) else (lambda k, d=None: getattr(data, k, d))
    params = GenerationParams()
    for name in ("prompt", "negative", "seed", "steps", "guidance", "width", "height", "sampler"):
        value = get(name, None)
        if value is not None:
            setattr(params, name, value)
    stack = get("stack", None) or []
    entries = stack.entries if isinstance(stack, Stack) else stack
    params.stack = [e if isinstance(e, StackEntry) else StackEntry.from_dict(e) for e in entries]
    return params


class GenerationSession:
    """One loaded base pipeline kept for many generations (lives on the GUI's worker thread)."""

    def __init__(self, base_path: str) -> None:
        from app.engine.generate import Generator

        self.base_path = base_path
        self._generator = Generator(base_path)

    def generate(
        self, params: GenerationParams, out_dir: str, *, on_event: Callable[[Event], None], cancel: CancelToken
    ) -> list[Any]:
        from app.engine.generate import GenerateConfig

        config = GenerateConfig(
            prompt=params.prompt,
            negative=params.negative,
            seed=params.seed,
            steps=params.steps,
            guidance=params.guidance,
            width=params.width,
            height=params.height,
            sampler=params.sampler or sampler_names()[0],
            batch_count=params.batch_count,
            insert_triggers=params.insert_triggers,
            out_dir=out_dir,
            stack=list(params.stack),
        )
        return self._generator.generate(config, on_event=on_event, cancel=cancel)


def gallery_dir() -> Path:
    return paths.user_data_dir() / "images"
