"""A kept training checkpoint as an ordinary adapter file, to compare, share or promote it.

``<adapter>.checkpoints/step-000200/lora.safetensors`` holds PEFT-named LoRA weights; the export writes them
through the same writer as the end of a run (kohya layout, real alpha, ModelSpec), with the run's ``ss_*``
metadata and ``ss_steps`` = the checkpoint's step. What only the end of the run knows (dataset tag
frequencies, image count) is copied from the finished adapter when it is there; the final adapter's
validation figures are not, as they describe another step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

from app.engine.errors import UserError
from app.engine.events import EventCallback, Level, Log, TrainSummary
from app.engine.paths import user_cache_dir

CHECKPOINTS_SUFFIX = ".checkpoints"
_STEP = re.compile(r"^(?:step[-_ ]?)?0*(\d+)$", re.IGNORECASE)


def run_paths(ref: str | Path) -> tuple[Path, Path]:
    """(checkpoint folder, adapter file) from either of them."""
    ref = Path(ref).expanduser()
    if ref.name.endswith(CHECKPOINTS_SUFFIX):
        return ref, ref.with_name(ref.name[: -len(CHECKPOINTS_SUFFIX)] + ".safetensors")
    return ref.with_name(ref.stem + CHECKPOINTS_SUFFIX), ref


def kept_steps(run_dir: str | Path) -> list[int]:
    from app.engine.train.checkpoints import list_checkpoints

    return [int(p.name[5:]) for p in list_checkpoints(Path(run_dir))]


def _checkpoint_folder(run_dir: Path, step: int) -> Path:
    folder = run_dir / f"step-{step:06d}"
    if not (folder / "lora.safetensors").is_file() or not (folder / "state.json").is_file():
        kept = kept_steps(run_dir)
        raise UserError(f"No checkpoint at step {step} in {run_dir}.",
                        hint=f"Kept: {', '.join(map(str, kept))}." if kept
                        else "That run kept no checkpoints.")  # fmt: skip
    return folder


def parse_step(text: str) -> int:
    match = _STEP.match(str(text).strip())
    if not match:
        raise UserError(f"{text!r} is not a checkpoint step (write 200 or step-000200).")
    return int(match.group(1))


def export_checkpoint(run_dir: str | Path, step: int, out: str | Path, *, title: str = "") -> Path:
    """Write checkpoint ``step`` of ``run_dir`` as an adapter file ``out``; returns ``out``."""
    from safetensors.torch import load_file

    from app.engine.train.checkpoints import split_parts
    from app.engine.train.config import TrainConfig
    from app.engine.train.output import adapter_metadata, write_adapter

    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"No checkpoint folder {run_dir}.", hint="It is <adapter>.checkpoints beside the adapter.")
    folder = _checkpoint_folder(run_dir, step)
    out = Path(out).expanduser()
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"The adapter must be a .safetensors file (got {out.name}).")
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        saved = state["config"]
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names})
        states = split_parts(load_file(str(folder / "lora.safetensors")))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"Checkpoint {folder.name} of {run_dir.name} cannot be read ({err}).") from None
    final = run_paths(run_dir)[1]
    final_meta, family = _final_adapter(final)
    family = family or _family_of_base(cfg.base)
    if title:
        cfg.name = title
    tags = _json(final_meta.get("ss_tag_frequency", "{}"), {})
    extra = adapter_metadata(cfg, step=step, train_images=int(final_meta.get("ss_num_train_images", 0) or 0),
                             out=out, tag_frequency=tags, summary=TrainSummary())  # fmt: skip
    extra.pop("styleshelf.validation", None)  # the final adapter's figures describe another step
    extra["styleshelf.checkpoint"] = json.dumps({"run": final.stem, "step": step})
    return write_adapter(cfg, out, states, family=family, thumbnail=_sample_thumbnail(final, step), extra=extra)


def _json(text: str, default):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return default


def _final_adapter(path: Path) -> tuple[dict[str, str], str]:
    if not path.is_file():
        return {}, ""
    from app.engine.adapters import read_adapter_info

    try:
        info = read_adapter_info(path, with_hashes=False)
    except UserError:
        return {}, ""
    return dict(info.metadata), info.family if info.family_source == "metadata" else ""


def _family_of_base(base: str) -> str:
    from app.engine.models.detect import inspect_model

    try:
        return inspect_model(base).family
    except UserError as err:
        raise UserError(f"Cannot tell the checkpoint's model family: the finished adapter is missing and "
                        f"its base model cannot be read ({err}).") from None  # fmt: skip


def _sample_thumbnail(final: Path, step: int):
    sample = final.with_name(final.stem + ".samples") / f"step-{step:06d}-0.png"
    if not sample.is_file():
        return None
    from app.engine.train.sampling import thumbnail_of

    return thumbnail_of(sample)


def export_all(adapter: str | Path, *, into: str | Path | None = None) -> list[Path]:
    """Every kept checkpoint of ``adapter``'s run as ``<stem>-step-000200.safetensors`` (default: in its run folder,
    which the shelf does not list)."""
    run_dir, final = run_paths(adapter)
    target = Path(into) if into else run_dir
    return [export_checkpoint(run_dir, step, target / f"{final.stem}-step-{step:06d}.safetensors")
            for step in kept_steps(run_dir)]  # fmt: skip


def checkpoint_choices(adapter: str, value: str) -> list[tuple[str, str]]:
    """For a grid's checkpoint axis: ``200`` / ``step-000200`` / ``final`` / ``all`` → [(label, adapter file)].

    Checkpoints are exported once into the user cache (keyed by the checkpoint file's size and time)."""
    run_dir, final = run_paths(adapter)
    word = value.strip().lower()
    if word in ("final", "last", "end"):
        if not final.is_file():
            raise UserError(f"{final.name} does not exist (yet): the run has not finished.")
        return [("final", str(final))]
    steps = kept_steps(run_dir) if word == "all" else [parse_step(value)]
    if word == "all" and not steps and not final.is_file():
        raise UserError(f"{final.stem} has no kept checkpoints in {run_dir}.")
    out = [(f"step {s}", str(cached_export(run_dir, s))) for s in steps]
    if word == "all" and final.is_file():
        out.append(("final", str(final)))
    return out


def cached_export(run_dir: Path, step: int) -> Path:
    lora = _checkpoint_folder(run_dir, step) / "lora.safetensors"
    st = lora.stat()
    key = hashlib.sha256(f"{lora.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = run_paths(run_dir)[1].stem
    target = user_cache_dir() / "checkpoint-adapters" / f"{stem}-step-{step:06d}-{key}.safetensors"
    if not target.is_file():
        export_checkpoint(run_dir, step, target)
    return target


def report_exports(adapter: str | Path, *, on_event: EventCallback) -> list[Path]:
    """``styleshelf train --export-checkpoints``: export, then say where (a Log event per file)."""
    written = export_all(adapter)
    for path in written:
        on_event(Log(message=f"exported checkpoint {path}"))
    if not written:
        on_event(Log(message="no checkpoints were kept to export", level=Level.WARNING))
    return written


def keep_checkpoint(adapter: str | Path, step: int) -> Path:
    """ "Keep this one": checkpoint ``step`` becomes the style's adapter file (same name and title on the shelf).

    The run's checkpoints stay on disk (the finished state is among them), so the choice can be changed later."""
    run_dir, final = run_paths(adapter)
    title = ""
    if final.is_file():
        from app.engine.adapters import read_adapter_info

        title = read_adapter_info(final, with_hashes=False).title
    return export_checkpoint(run_dir, step, final, title=title)
