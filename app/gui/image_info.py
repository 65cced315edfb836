"""What made a picture, in words: the styles and strengths, seed, sampler, steps (gallery tiles, tooltips, the
enlarged view and the metadata panel all say it the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".").replace("-", "−") if value else "0"


def styles_text(params: Any, *, empty: str = "no style") -> str:
    """ "Ink 0.6 + Pastel −0.3": the enabled adapters with their strengths, in stack order."""
    parts = []
    for entry in getattr(params, "stack", None) or []:
        if not getattr(entry, "enabled", True):
            continue
        name = entry.name or Path(entry.path).stem or "?"
        text = f"{name} {_number(entry.weight)}"
        te = getattr(entry, "text_encoder_weight", None)
        if te is not None and te != entry.weight:
            text += f" (text {_number(te)})"
        parts.append(text)
    return " + ".join(parts) or empty


def run_text(params: Any, seed: int) -> str:
    """ "seed 42 · 20 steps · Euler a" (the sampler last: it is the part a narrow tile cuts off)."""
    if params is None:
        return f"seed {seed}"
    return f"seed {seed} · {params.steps} steps · {params.sampler}"


def tile_text(params: Any, seed: int) -> str:
    """Two short lines under a gallery tile: what differs between pictures of a locked-seed comparison."""
    if params is None:
        return f"seed {seed}"
    return f"{styles_text(params)}\n{run_text(params, seed)}"


def full_text(params: Any, seed: int, path: str = "") -> str:
    """Every parameter, one per line (the metadata panel, tooltips, the enlarged view)."""
    lines = []
    if params is None:
        lines.append(f"Seed: {seed}")
        lines.append("Settings unknown (the picture has no parameters).")
    else:
        size = f"{params.width}×{params.height}" if params.width and params.height else "model's native size"
        lines += [
            f"Prompt: {params.prompt or '—'}",
            f"Negative: {params.negative or '—'}",
            f"Styles: {styles_text(params, empty='none')}",
            f"Seed: {seed}",
            f"Sampler: {params.sampler}",
            f"Steps: {params.steps}",
            f"Guidance (CFG): {_number(params.guidance)}",
            f"Size: {size}",
        ]
    if path:
        lines.append(f"File: {path}")
    return "\n".join(lines)
