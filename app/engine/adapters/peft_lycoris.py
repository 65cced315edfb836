"""PEFT DoRA and LoKr weights → the kohya / LyCORIS tensors other tools read (``lycoris.kohya`` layout).

DoRA: ``<name>.lora_down.weight`` / ``lora_up.weight`` / ``alpha`` as for LoRA, plus ``<name>.dora_scale`` =
PEFT's ``lora_magnitude_vector``. PEFT normalises the merged weight per *output row*
(``W' = m · (W + s·BA) / ‖W + s·BA‖_row``), which is LyCORIS' ``wd_on_output`` form; LyCORIS stores that
magnitude as ``[out, 1]`` (``[out, 1, 1, 1]`` on a convolution), and LyCORIS, diffusers and our loader read a
scale of that shape per row. (PEFT keeps ``[out]`` for a Linear and ``[1, out, 1, 1]`` for a Conv2d.)

LoKr: PEFT's ``lokr_w1`` / ``lokr_w1_a`` / ``lokr_w1_b`` / ``lokr_w2`` / ``lokr_w2_a`` / ``lokr_w2_b`` have the
LyCORIS names, shapes and factorisation already (PEFT ported LyCORIS' module), and both build
``ΔW = scale · kron(w1, w2)``. Only the scale differs: PEFT always uses ``alpha / r``, whereas LyCORIS,
ComfyUI and AUTOMATIC1111 use ``alpha / dim`` with ``dim`` read from a factorised half (``w2_b`` or ``w1_b``:
``r``, the same) and scale 1 when both halves are full matrices. In that last case PEFT's scale is folded
into ``lokr_w1`` (the small half), so every reader rebuilds PEFT's delta.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from app.engine.adapters.keys import kohya_name
from app.engine.errors import AdapterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

LOKR_PARTS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
_PART = re.compile(
    r"^(?P<path>.+?)\.(?P<part>lora_A|lora_B|lora_magnitude_vector|"
    + "|".join(sorted(LOKR_PARTS, key=len, reverse=True))
    + r")(?:\.[\w-]+)*$"
)


def network_of(state_dict: dict[str, Any]) -> str:
    """``lora`` | ``dora`` | ``lokr``: what a PEFT state dict holds (from its key names)."""
    if any(".lokr_" in k for k in state_dict):
        return "lokr"
    if any(".lora_magnitude_vector" in k for k in state_dict):
        return "dora"
    return "lora"


def _grouped(state_dict: dict[str, Tensor], component: str, *, sdxl: bool) -> dict[str, dict[str, Tensor]]:
    modules: dict[str, dict[str, Any]] = {}
    for key, tensor in state_dict.items():
        m = _PART.match(key.removeprefix("base_model.model.").removeprefix(f"{component}."))
        if m is None:
            raise AdapterError(
                f"Cannot save {component} weight {key!r}: not a PEFT LoRA, DoRA or LoKr tensor.",
                hint="LoRA biases and embedding LoRA are not supported in saved adapters.",
            )
        modules.setdefault(kohya_name(component, m["path"], sdxl=sdxl), {})[m["part"]] = tensor
    return modules


def peft_to_lycoris(
    state_dict: dict[str, Tensor], component: str, *, sdxl: bool, rank: int, alpha: float
) -> dict[str, Tensor]:
    """One component's PEFT DoRA or LoKr weights → {kohya tensor name: fp32 tensor}. ``rank``/``alpha`` are
    the LoraConfig/LoKrConfig ones (PEFT's scale is alpha / rank)."""
    import torch

    out: dict[str, Any] = {}
    for name, parts in sorted(_grouped(state_dict, component, sdxl=sdxl).items()):
        parts = {k: v.detach().to("cpu", torch.float32) for k, v in parts.items()}
        if any(p.startswith("lokr_") for p in parts):
            if not ("lokr_w1" in parts or {"lokr_w1_a", "lokr_w1_b"} <= set(parts)):
                raise AdapterError(f"Incomplete LoKr module {name}: no lokr_w1 half.")
            if not ("lokr_w2" in parts or {"lokr_w2_a", "lokr_w2_b"} <= set(parts)):
                raise AdapterError(f"Incomplete LoKr module {name}: no lokr_w2 half.")
            if "lokr_w1_b" not in parts and "lokr_w2_b" not in parts:
                parts["lokr_w1"] = parts["lokr_w1"] * (alpha / rank)  # readers use scale 1 here (see above)
            for part, tensor in parts.items():
                out[f"{name}.{part}"] = tensor.contiguous()
        else:
            if not {"lora_A", "lora_B"} <= set(parts):
                raise AdapterError(f"Incomplete {component} LoRA state dict: lora_A/lora_B pair missing for {name}.")
            down, up = parts["lora_A"], parts["lora_B"]
            out[f"{name}.lora_down.weight"] = down.contiguous()
            out[f"{name}.lora_up.weight"] = up.contiguous()
            if "lora_magnitude_vector" in parts:
                magnitude = parts["lora_magnitude_vector"].reshape(-1)
                if magnitude.numel() != up.shape[0]:
                    raise AdapterError(
                        f"{name}: DoRA magnitude has {magnitude.numel()} values for {up.shape[0]} outputs."
                    )
                out[f"{name}.dora_scale"] = magnitude.reshape(-1, *[1] * (down.dim() - 1)).contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    return out
