"""Resumable checkpoints: LoRA weights + optimiser + LR schedule + RNG, never the base model, never a pickle.

Layout: ``<adapter>.checkpoints/step-000200/{lora,optimizer}.safetensors + state.json``. A checkpoint is
written into a hidden temporary folder, every file fsynced, then the folder is renamed into place, so after
kill -9 a ``step-*`` folder is always complete and a half-written one is only ever a ``.tmp`` leftover.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from app.engine.atomic import _fsync_dir
from app.engine.configbase import same_on_resume
from app.engine.errors import UserError
from app.engine.train.lora import load_lora_state_dict
from app.engine.train.run_state import latest_checkpoint, list_checkpoints, loss_history_of  # noqa: F401 - re-exported

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    step: int
    path: Path
    lora: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    state: dict[str, Any]
    rng_state: torch.Tensor | None  # torch's global RNG at the save; whoever resumes decides to restore it

    @property
    def loss_history(self) -> list[float]:
        """The loss of every step up to this checkpoint (empty for checkpoints written before it was kept)."""
        return loss_history_of(self.state)[: self.step]


def save_checkpoint(
    folder: Path,
    *,
    step: int,
    lora: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder))
    try:
        save_file({k: v.contiguous() for k, v in lora.items()}, str(tmp / "lora.safetensors"))
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        opt_tensors["rng.torch"] = torch.random.get_rng_state()
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        state = {
            "format": FORMAT_VERSION,
            "step": step,
            "optimizer": opt_meta,
            "scheduler": _jsonable(scheduler.state_dict()),
            **extra,
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        for name in ("lora.safetensors", "optimizer.safetensors", "state.json"):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if final.exists():  # the same step saved again (cancel right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    prune(folder, keep)
    return final


def clear_checkpoints(folder: Path) -> int:
    """Delete every checkpoint in ``folder``; returns how many there were."""
    found = list_checkpoints(folder)
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return len(found)


def prune(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in folder.glob(".step-*.tmp"):  # from a run killed mid-save
        shutil.rmtree(leftover, ignore_errors=True)


def load_checkpoint(path: Path) -> Checkpoint:
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if state.get("format") != FORMAT_VERSION:
        raise ValueError(f"checkpoint format {state.get('format')} is not {FORMAT_VERSION}")
    opt_tensors = load_file(str(path / "optimizer.safetensors"))
    rng = opt_tensors.pop("rng.torch", None)
    return Checkpoint(
        step=int(state["step"]),
        path=path,
        lora=load_file(str(path / "lora.safetensors")),
        optimizer=_join_optimizer(opt_tensors, state["optimizer"]),
        scheduler=state["scheduler"],
        state=state,
        rng_state=rng,
    )


def restore(folder: Path, config: Any, *, modules: dict[str, Any], optimizer, scheduler) -> Checkpoint | None:
    """Load the newest checkpoint of ``folder`` into LoRA ``modules``, optimiser and scheduler.

    Returns it (its step, path, loss history and RNG state), or None when there is none. The global RNG
    is left alone: the caller restores ``rng_state`` where it can be seen. Refuses (UserError) a damaged
    checkpoint, changed settings, or one past ``config.steps``. A checkpoint at exactly ``config.steps`` is a
    run that died after its last step (during validation, samples or the adapter write): resuming it finishes
    that work.
    """
    found = latest_checkpoint(folder)
    if found is None:
        return None
    try:
        ckpt = load_checkpoint(found)
    except Exception as err:  # noqa: BLE001 - any damage is the same user-facing problem
        raise UserError(
            f"Checkpoint {found.name} cannot be read: {err}", hint="Delete it to resume from an older one."
        ) from None
    changed = changed_settings(ckpt.state.get("config", {}), config)
    if changed:
        raise UserError(
            f"Cannot resume: {', '.join(changed)} changed since the checkpoint.",
            hint="Use the same settings (only steps and sampling may change), or start without --resume.",
        )
    if ckpt.step > config.steps:
        raise UserError(
            f"The checkpoint is at step {ckpt.step}, past the {config.steps} steps asked for.",
            hint=f"Ask for at least {ckpt.step} steps to continue training.",
        )
    parts = split_parts(ckpt.lora)
    for name, module in modules.items():
        load_lora_state_dict(module, parts.get(name, {}))
    optimizer.load_state_dict(ckpt.optimizer)
    scheduler.load_state_dict(ckpt.scheduler)
    return ckpt


def changed_settings(saved: dict[str, Any], config: Any) -> list[str]:
    """Names of the settings that differ between a checkpoint's config and ``config``: those marked
    ``same_on_resume=True`` on the config's fields (steps and sampling may change)."""
    return [k for k in same_on_resume(type(config)) if k in saved and saved[k] != getattr(config, k)]


def split_parts(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{"unet.<peft key>": t, "text_encoder.<key>": t}`` → ``{"unet": {...}, "text_encoder": {...}}``."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        part, name = key.split(".", 1)
        parts.setdefault(part, {})[name] = value
    return parts


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors go to safetensors as ``state.<param id>.<name>``; the rest (hyper-parameters) to JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    groups = meta["param_groups"]
    for group in groups:
        for key in ("betas", "eps"):  # tuples in the optimisers (AdamW betas, Adafactor eps); JSON made them lists
            if isinstance(group.get(key), list):
                group[key] = tuple(group[key])
    return {"state": state, "param_groups": groups}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return None  # callables (lr lambdas) are rebuilt from the config, not stored
