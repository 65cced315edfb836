"""Bake: merge the enabled, weighted adapters of a stack into one new adapter file (the "house style").

Per module, the stack applies ΔW = Σ wᵢ · sᵢ · Uᵢ Dᵢ (wᵢ the stack weight, sᵢ = alphaᵢ / rankᵢ).

- ``concat``: D = [D₁; D₂; …], U = [w₁s₁U₁, w₂s₂U₂, …], alpha = rank (scale 1). Ranks add and the
  product is exactly ΔW: the baked file gives the stack's output up to float rounding.
- ``svd``: the best rank-k approximation of ΔW (Eckart–Young), computed without forming ΔW's full SVD:
  QR of the stacked U and Dᵀ leaves a small R×R core whose SVD gives the factors. Modules whose total
  rank is already ≤ k are concatenated (exact).

LoHa, LoKr and full-diff sources arrive from the reader as exact LoRA pairs of their full delta
(adapters/lycoris.py), so they are merged by that delta and re-ranked by the SVD like any LoRA. DoRA sources
are refused: their delta depends on the base model's weights, which a bake does not have.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine.adapters.info import UNKNOWN
from app.engine.adapters.keys import component_of
from app.engine.adapters.loader import LoraModule, read_lora_modules
from app.engine.adapters.writer import build_metadata, write_kohya_modules
from app.engine.configbase import Settings, setting, validate
from app.engine.errors import AdapterError, Cancelled, UserError
from app.engine.events import NEVER_CANCEL, CancelToken, EventCallback, Finished, Log, Progress, ignore_event
from app.engine.shelf.stack import Stack, StackEntry

BAKE_MODES = ("concat", "svd")


@dataclass
class BakeConfig(Settings):
    entries: list[StackEntry] = field(default_factory=list)
    out: str = setting("", "The new adapter file (.safetensors)")
    mode: str = setting("concat", "concat keeps every detail (ranks add); svd compresses to a chosen rank",
                        choices=BAKE_MODES)  # fmt: skip
    rank: int = setting(16, "Rank of the baked adapter (svd mode)", minimum=1, maximum=1024)
    title: str = setting("", "Title of the baked adapter (default: its sources and weights)")
    trigger_phrase: str = setting("", "Trigger phrase (default: the sources' phrases joined)")


def _weights(entry: StackEntry) -> tuple[float, float]:
    te = entry.weight if entry.text_encoder_weight is None else entry.text_encoder_weight
    return float(entry.weight), float(te)


def _concat(parts: list[tuple[float, LoraModule]]) -> tuple[Any, Any, float]:
    import torch

    downs = [m.down for _c, m in parts]
    if len({tuple(d.shape[1:]) for d in downs}) > 1:
        raise AdapterError("Cannot merge: the same layer has LoRAs with different kernel shapes.")
    down = torch.cat(downs, dim=0)
    up = torch.cat([m.up * (c * m.scale) for c, m in parts], dim=1)
    return down, up, float(down.shape[0])


def _svd(parts: list[tuple[float, LoraModule]], rank: int) -> tuple[Any, Any, float]:
    import torch

    down, up, total = _concat(parts)
    if total <= rank:
        return down, up, total
    d = down.reshape(down.shape[0], -1).double()  # [R, in·kh·kw]
    u = up.reshape(up.shape[0], -1).double()  # [out, R]
    qu, ru = torch.linalg.qr(u)  # u = qu ru
    qd, rd = torch.linalg.qr(d.T)  # dᵀ = qd rd  →  ΔW = qu (ru rdᵀ) qdᵀ
    um, s, vmh = torch.linalg.svd(ru @ rd.T)
    k = min(rank, s.shape[0])
    root = s[:k].sqrt()
    new_up = (qu @ um[:, :k]) * root  # [out, k]
    new_down = root[:, None] * (vmh[:k] @ qd.T)  # [k, in·kh·kw]
    new_down = new_down.reshape(k, *down.shape[1:]).float()
    new_up = new_up.float().reshape(up.shape[0], k, *up.shape[2:])
    return new_down, new_up, float(k)


def bake(
    stack: Stack | list[StackEntry] | BakeConfig,
    out: str | os.PathLike[str] | None = None,
    *,
    mode: str | None = None,
    rank: int | None = None,
    title: str = "",
    trigger_phrase: str = "",
    on_event: EventCallback = ignore_event,
    cancel: CancelToken = NEVER_CANCEL,
) -> Path:
    """Merge the enabled entries of ``stack`` into one kohya-layout adapter at ``out``.

    ``mode`` defaults to ``svd`` when a ``rank`` is given, else ``concat``.
    """
    if isinstance(stack, BakeConfig):
        config = stack
    else:
        entries = stack.entries if isinstance(stack, Stack) else list(stack)
        config = BakeConfig(entries=entries, out=str(out or ""), mode=mode or ("svd" if rank else "concat"),
                            rank=rank or 16, title=title, trigger_phrase=trigger_phrase)  # fmt: skip
    validate(config)
    if not config.out:
        raise UserError("Choose where to write the baked adapter.")
    out_path = Path(config.out)
    if out_path.suffix.lower() != ".safetensors":
        raise UserError(f"{out_path.name}: the baked adapter must be a .safetensors file.")
    active = [e for e in config.entries if e.enabled and any(w != 0 for w in _weights(e))]
    if not active:
        raise UserError("Nothing to bake: enable at least one adapter with a non-zero weight.")
    for e in active:
        if not e.path:
            raise UserError(f"Adapter {e.name or '?'} has no file on this shelf; find or import it first.")
        if Path(e.path).resolve() == out_path.resolve():
            raise UserError(f"{out_path.name} is one of the sources; write the bake to a new file.")

    sources: list[dict[str, Any]] = []
    per_module: dict[str, list[tuple[float, LoraModule]]] = {}
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    families: set[str] = set()
    triggers: list[str] = []
    thumbnail = ""
    for e in active:
        info, modules = read_lora_modules(e.path)
        if any(m.dora_scale is not None for m in modules.values()):
            # DoRA rescales the merged weight by a stored magnitude over its norm: without the base weights
            # there is no low-rank delta to merge.
            raise AdapterError(
                f"Cannot bake {Path(e.path).name}: it is a DoRA adapter, whose effect depends on the "
                "base model's weights; use it on the shelf instead."
            )
        if any(m.bias is not None for m in modules.values()):
            raise AdapterError(
                f"Cannot bake {Path(e.path).name}: it changes layer biases (a full diff with diff_b), "
                "which a LoRA file cannot store; use it on the shelf instead."
            )
        on_event(Log(message=f"read {Path(e.path).name}: {len(modules)} modules, rank {info.rank}"))
        if info.family != UNKNOWN:
            families.add(info.family)
        thumbnail = thumbnail or info.metadata.get("modelspec.thumbnail", "")
        if info.trigger_phrase and info.trigger_phrase not in triggers:
            triggers.append(info.trigger_phrase)
        w_unet, w_te = _weights(e)
        sources.append({"title": info.title, "file": Path(e.path).name, "weight": w_unet, "text_encoder_weight": w_te,
                        "tensor_sha256": info.tensor_sha256, "autov2": info.autov2, "family": info.family})  # fmt: skip
        for name, m in modules.items():
            c = w_unet if component_of(name) == "unet" else w_te
            if c == 0:
                continue
            io = (tuple(m.up.shape[:1]), tuple(m.down.shape[1:]))
            if shapes.setdefault(name, io) != io:
                raise AdapterError(
                    f"Cannot merge {Path(e.path).name}: {name} has a different shape than in the other adapters."
                )
            per_module.setdefault(name, []).append((c, m))
    base_families = {"sd2" if f == "sd2-v" else f for f in families}
    if len(base_families) > 1:
        raise AdapterError(f"Cannot merge adapters for different base models ({', '.join(sorted(families))}).")
    family = sorted(families)[-1] if families else None  # sd2 + sd2-v → sd2-v, the more specific

    merged: dict[str, tuple[Any, Any, float]] = {}
    for i, (name, parts) in enumerate(sorted(per_module.items()), 1):
        if cancel.is_set():
            raise Cancelled()
        merged[name] = _concat(parts) if config.mode == "concat" else _svd(parts, config.rank)
        on_event(Progress(step=i, total=len(per_module), phase="bake"))

    ranks = sorted({int(d.shape[0]) for d, _u, _a in merged.values()})
    # One alpha for the whole file, scale folded into lora_up: diffusers 0.42 applies only the most
    # common alpha to attention layers of a kohya file (its per-layer alpha names do not match), so
    # per-layer alphas would be silently wrong there. Uniform alpha = what every reader gets right.
    alpha = float(ranks[-1])
    merged = {n: (d, u * (float(d.shape[0]) / alpha), alpha) for n, (d, u, _a) in merged.items()}
    label = " + ".join(f"{s['title']} ×{s['weight']:g}" for s in sources)
    meta = build_metadata(
        family=family, rank=ranks[-1], alpha=alpha, title=config.title or f"Baked: {label}",
        trigger_phrase=config.trigger_phrase or ", ".join(triggers), thumbnail=None,
        description=f"Merged by StyleShelf ({config.mode}) from {label}.",
        extra={"modelspec.merged_from": ", ".join(s["title"] for s in sources),
               "styleshelf.bake": json.dumps({"mode": config.mode,
                                              "rank": config.rank if config.mode == "svd" else None,
                                              "sources": sources})},
    )  # fmt: skip
    if thumbnail:
        meta["modelspec.thumbnail"] = thumbnail  # the first source's picture, until the user sets one
    path = write_kohya_modules(out_path, merged, meta)
    on_event(Finished(output=str(path), summary={"modules": len(merged), "ranks": ranks, "sources": len(sources)}))
    return path
