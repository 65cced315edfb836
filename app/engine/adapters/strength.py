"""How strongly an adapter changes its layers: the *effective* update, judged per module.

"All values finite" says nothing about an adapter with alpha 3e38: every tensor is an ordinary number,
yet scale × up·down swamps the model and every image comes out black. What a LoRA module adds to a
layer is ΔW = (alpha / rank) · up @ down, so that is what is measured: its Frobenius norm, against the
base layer's own weight norm when a base is at hand (the ratio says "this module adds N× the layer"),
else against absolute bounds no real adapter comes near.

‖up @ down‖_F is computed from two rank×rank Gram matrices (‖UD‖² = Σ (UᵀU) ∘ (DDᵀ)), in float64, so
judging even a rank-128 SDXL adapter costs milliseconds and never materialises ΔW.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

# Real adapters use alpha/rank between ~1/128 (alpha 1, rank 128) and ~16; above this it is a broken file.
ABSURD_SCALE = 1000.0
# Frobenius norm of one module's ΔW: trained LoRAs stay within ~0.01–20 (SD base layers are ~10–100).
ABSURD_UPDATE_NORM = 10_000.0
# ΔW larger than this many times the layer's own weights overwhelms it at strength 1.
OVERWHELMING_RATIO = 10.0
_ABSURD = "absurd scale"


@dataclass
class ModuleStrength:
    module: str
    scale: float  # alpha / rank
    update_norm: float  # ‖scale · up @ down‖_F
    base_norm: float | None = None  # ‖W‖_F of the base layer, when a base was given

    @property
    def ratio(self) -> float | None:
        if self.base_norm is None or self.base_norm == 0:
            return None
        return self.update_norm / self.base_norm


@dataclass
class StrengthReport:
    modules: list[ModuleStrength]
    warnings: list[str] = field(default_factory=list)
    absurd: str = ""  # the warning when a scale is absurd: the adapter breaks every image at any usual strength

    @property
    def compared_to_base(self) -> int:
        return sum(1 for m in self.modules if m.ratio is not None)

    def largest(self) -> ModuleStrength | None:
        by = [m for m in self.modules if m.ratio is not None] or self.modules
        key = (lambda m: m.ratio) if by and by[0].ratio is not None else (lambda m: m.update_norm)
        return max(by, key=lambda m: _sortable(key(m)), default=None)

    def summary(self) -> str:
        """One line: the size of the update, relative to the base where known."""
        top = self.largest()
        if top is None:
            return ""
        if top.ratio is not None:
            ratios = sorted(m.ratio for m in self.modules if m.ratio is not None)
            median = ratios[len(ratios) // 2]
            return (f"ΔW/W median {_fmt(median)}, largest {_fmt(top.ratio)} ({top.module}); "
                    f"{self.compared_to_base} of {len(self.modules)} modules compared with the base")  # fmt: skip
        norms = sorted(m.update_norm for m in self.modules)
        return (
            f"‖ΔW‖ median {_fmt(norms[len(norms) // 2])}, largest {_fmt(top.update_norm)} ({top.module}); no base given"
        )

    def to_json_dict(self) -> dict[str, Any]:
        top = self.largest()
        return {
            "summary": self.summary(),
            "largest_module": top.module if top else None,
            "largest_update_norm": _jsonable(max((m.update_norm for m in self.modules), default=0.0)),
            "largest_ratio_to_base": _jsonable(top.ratio) if top and top.ratio is not None else None,
            "compared_to_base": self.compared_to_base,
            "warnings": list(self.warnings),
        }


def update_norm(up: Any, down: Any, scale: float) -> float:
    """‖scale · up @ down‖_F (conv LoRAs flattened to matrices), without forming the product."""
    import torch

    u = up.detach().reshape(up.shape[0], -1).to(torch.float64)  # [out, r]
    d = down.detach().reshape(down.shape[0], -1).to(torch.float64)  # [r, in·kh·kw]
    squared = float(((u.T @ u) * (d @ d.T)).sum().clamp_min(0))
    with_scale = abs(scale) * math.sqrt(squared)
    return with_scale if math.isfinite(with_scale) else math.inf


def judge(modules: dict[str, Any], base_norm: Callable[[str], float | None] | None = None) -> StrengthReport:
    """Judge ``{canonical module: LoraModule}``; ``base_norm(module)``: the base layer's ‖W‖_F, or None."""
    measured = []
    for name, m in modules.items():
        norm = base_norm(name) if base_norm else None
        measured.append(ModuleStrength(name, float(m.scale), update_norm(m.up, m.down, m.scale), norm))
    warnings = _warnings(measured, modules)
    return StrengthReport(measured, warnings, next((w for w in warnings if w.startswith(_ABSURD)), ""))


_norms: "weakref.WeakKeyDictionary[Any, tuple[int, float]]" = weakref.WeakKeyDictionary()


def layer_norm(layer: Any) -> float:
    """‖W‖_F of a Linear/Conv layer, remembered until its weight changes (loading many adapters onto one
    base measures each layer once)."""
    import torch

    weight = layer.weight
    version = weight._version
    hit = _norms.get(layer)
    if hit is not None and hit[0] == version:
        return hit[1]
    norm = float(torch.linalg.vector_norm(weight.detach(), dtype=torch.float32))
    _norms[layer] = (version, norm)
    return norm


def _warnings(measured: list[ModuleStrength], modules: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if not measured:
        return out
    alphas = {name: float(m.alpha) for name, m in modules.items()}
    zero = [n for n, a in alphas.items() if a == 0]
    if len(zero) == len(alphas):
        out.append("alpha is 0 in every module: this adapter changes nothing at any strength.")
    elif zero:
        out.append(f"{len(zero)} of {len(alphas)} modules have alpha 0 and change nothing (e.g. {zero[0]}).")
    absurd = [m for m in measured if not math.isfinite(m.scale) or abs(m.scale) > ABSURD_SCALE]
    if absurd:
        m = max(absurd, key=lambda x: _sortable(abs(x.scale)))
        out.append(
            f"{_ABSURD}: alpha {_fmt(alphas[m.module])} with rank {modules[m.module].rank} gives "
            f"alpha/rank = {_fmt(m.scale)} in {len(absurd)} module(s) (real adapters use about 0.01–16); "
            "images will break (black or noise)."
        )
    overwhelming = [m for m in measured if m.ratio is not None and m.ratio > OVERWHELMING_RATIO]
    if absurd:
        pass  # said above; the ratio would only repeat it
    elif overwhelming:
        m = max(overwhelming, key=lambda x: _sortable(x.ratio))
        out.append(
            f"the update is {_fmt(m.ratio)}× the base layer's own weights in {m.module} "
            f"({len(overwhelming)} module(s) over {OVERWHELMING_RATIO:g}×): at strength 1 it overwhelms the model."
        )
    elif not any(m.ratio is not None for m in measured):
        huge = [m for m in measured if m.update_norm > ABSURD_UPDATE_NORM]
        if huge:
            m = max(huge, key=lambda x: _sortable(x.update_norm))
            out.append(
                f"the update in {m.module} has norm {_fmt(m.update_norm)} (real adapters stay below about 20): "
                "images will break (black or noise)."
            )
    return out


def _sortable(value: float | None) -> float:
    return -1.0 if value is None or math.isnan(value) else value


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def _jsonable(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return str(value)
