"""LyCORIS LoHa / LoKr / full-diff / LoCon-Tucker modules and DoRA, turned into exact LoRA pairs.

The shelf's whole pipeline (weights, toggles, stacks, the LRU of loaded adapters, bake) runs on LoRA pairs
``up @ down``. Every format here is an exact product of such a pair, so converting once at load keeps all of
it working with no second code path:

- LoHa ``(w1a@w1b) ⊙ (w2a@w2b)`` is exactly a rank r1·r2 LoRA (the face-splitting / Khatri-Rao identity
  ``(A1B1)⊙(A2B2) = (A1•A2)(B1∗B2)``, rows of the up factors and columns of the down factors multiplied
  pairwise). Tucker LoHa (``hada_t1/t2``, conv) is rebuilt to its full delta first.
- LoKr ``kron(w1, w2)`` is exactly ``kron(U1,U2) @ kron(V1,V2)`` for any split ``w = U V`` of each half:
  rank rank(w1)·rank(w2).
- A full delta (``diff``; its bias delta ``diff_b`` rides on the up layer's bias, PEFT's ``lora_bias``;
  Tucker LoHa, LoKr whose kron rank would exceed the layer's) becomes the pair
  (identity, ΔW) or (ΔW, identity), whichever is narrower: exact, at rank min(out, in·kh·kw). That is the
  "cached full delta per layer": it costs about one copy of the layer's weights in memory.
- DoRA (kohya/LyCORIS ``dora_scale``, PEFT ``lora_magnitude_vector``) rescales the merged weight by the stored
  magnitude over its norm, so its effect depends on the base weights: the loader computes the effective delta
  ``m·(W+ΔW)/‖W+ΔW‖ − W`` against the base layer (as ComfyUI does: a weight w then scales that delta).

Scales follow ComfyUI / AUTOMATIC1111 (alpha / dim with dim = the factorised side's rank; a LoKr with both
halves full has scale 1).
"""

from __future__ import annotations

import re
from typing import Any

from app.engine.adapters.keys import classify_key

# tensor suffix → part name (LyCORIS spelling)
LYCORIS_PARTS = (
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    "diff", "diff_b", "dora_scale", "lora_mid.weight",
)  # fmt: skip
_KOHYA_PART = re.compile(
    r"^(lora_unet|lora_te1|lora_te2|lora_te)_(.+)\.(" + "|".join(map(re.escape, LYCORIS_PARTS)) + r")$"
)
_PEFT_MAGNITUDE = re.compile(r"^(.+)\.lora_magnitude_vector(?:\.[\w-]+)*$")
# Formats recognised but not applied: (pattern, the name shown in the refusal).
_REFUSED = (
    (re.compile(r"\.(oft_blocks|oft_diag|oft_R|rescale)$|boft"), "OFT/BOFT (orthogonal fine-tuning)"),
    (re.compile(r"\.(a1|a2|b1|b2)\.weight$"), "GLoRA"),
    (re.compile(r"\.on_input$"), "(IA)³"),
    (re.compile(r"lora_embedding_|\.emb_params$"), "embedding LoRA"),
)


def classify_lycoris_key(key: str) -> tuple[str, str, str] | None:
    """(canonical module, part, layout) for a LyCORIS / DoRA tensor, else None."""
    m = _KOHYA_PART.match(key)
    if m:
        prefix, path, part = m.groups()
        role = classify_key(f"{prefix}_{path}.alpha")  # the module name and layout, as for LoRA keys
        if role is not None:
            return role.module, part.removesuffix(".weight"), role.layout
    m = _PEFT_MAGNITUDE.match(key)
    if m:
        role = classify_key(f"{m.group(1)}.lora_A.weight")
        if role is not None:
            return role.module, "dora_scale", role.layout
    return None


def refused_format(key: str) -> str | None:
    for pattern, name in _REFUSED:
        if pattern.search(key):
            return name
    return None


def algorithm(parts: set[str]) -> str:
    if any(p.startswith("hada_") for p in parts):
        return "loha"
    if any(p.startswith("lokr_") for p in parts):
        return "lokr"
    if "diff" in parts:
        return "full"
    return "lora"


def header_shape(parts: dict[str, tuple[int, ...]]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(pseudo down shape [rank, in], pseudo up shape [out, rank]) of a LoHa/LoKr/full module from its header,
    for listing and family detection; None when the parts do not make a module."""
    kind = algorithm(set(parts))
    needed = {
        "loha": [{"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}],
        "lokr": [{"lokr_w1"}, {"lokr_w1_a", "lokr_w1_b"}],
        "full": [{"diff"}],
    }.get(kind, [])
    if kind == "lokr" and not ("lokr_w2" in parts or {"lokr_w2_a", "lokr_w2_b"} <= set(parts)):
        return None
    if not any(n <= set(parts) for n in needed):
        return None
    try:
        if kind == "loha":  # plain: w1_a [out, r], w1_b [r, in·k·k]; Tucker: w1_a [r, out], w1_b [r, in]
            rank = parts["hada_w1_b"][0]
            out = parts["hada_w1_a"][1] if "hada_t1" in parts else parts["hada_w1_a"][0]
            return (rank, parts["hada_w1_b"][1]), (out, rank)
        if kind == "lokr":
            o1, i1 = parts["lokr_w1"][:2] if "lokr_w1" in parts else (parts["lokr_w1_a"][0], parts["lokr_w1_b"][1])
            if "lokr_w2" in parts:
                o2, i2 = parts["lokr_w2"][:2]
            elif "lokr_t2" in parts:  # Tucker: w2a is [r, out2], w2b [r, in2]
                o2, i2 = parts["lokr_w2_a"][1], parts["lokr_w2_b"][1]
            else:
                o2, i2 = parts["lokr_w2_a"][0], parts["lokr_w2_b"][1]
            rank = next((parts[p][0] for p in ("lokr_w2_b", "lokr_w1_b") if p in parts), min(o1 * o2, i1 * i2))
            return (rank, i1 * i2), (o1 * o2, rank)
        if kind == "full":
            out, fin = parts["diff"][:2]
            return (min(out, fin), fin), (out, min(out, fin))
    except (KeyError, IndexError):
        return None
    return None


# ------------------------------------------------------------------------------------------ conversions


def _scale(alpha: float | None, dim: int | None) -> float:
    return 1.0 if alpha is None or not dim else alpha / dim


def full_to_pair(delta: Any) -> tuple[Any, Any]:
    """An exact (down, up) for a full delta [out, in(, kh, kw)]: the narrower of (ΔW, I) and (I, ΔW)."""
    import torch

    out = delta.shape[0]
    flat = delta.reshape(out, -1)
    conv = delta.dim() == 4
    if out <= flat.shape[1]:
        up = torch.eye(out, dtype=delta.dtype)
        return delta.contiguous(), (up[:, :, None, None] if conv else up)
    n = flat.shape[1]
    down = torch.eye(n, dtype=delta.dtype)
    down = down.reshape(n, *delta.shape[1:]) if conv else down
    return down.contiguous(), (flat[:, :, None, None] if conv else flat).contiguous()


def _pair_of(w: Any) -> tuple[Any, Any]:
    """A (U, V) split of a full 2-D matrix at its smaller side (exact, no decomposition)."""
    import torch

    if w.shape[0] <= w.shape[1]:
        return torch.eye(w.shape[0], dtype=w.dtype), w
    return w, torch.eye(w.shape[1], dtype=w.dtype)


def loha_pair(p: dict[str, Any], alpha: float | None) -> tuple[Any, Any]:
    """LoHa → (down, up). Non-Tucker conv LoHa arrives flat [R, in·kh·kw] (its file has no kernel size):
    ``with_conv_kernel`` gives it the layer's kernel where the module name tells it, else the loader does."""
    import torch

    scale = _scale(alpha, p["hada_w1_b"].shape[0])
    if "hada_t1" in p:
        r1 = torch.einsum("i j k l, j r, i p -> p r k l", p["hada_t1"], p["hada_w1_b"], p["hada_w1_a"])
        r2 = torch.einsum("i j k l, j r, i p -> p r k l", p["hada_t2"], p["hada_w2_b"], p["hada_w2_a"])
        return full_to_pair(r1 * r2 * scale)
    a1, b1 = p["hada_w1_a"], p["hada_w1_b"].reshape(p["hada_w1_b"].shape[0], -1)
    a2, b2 = p["hada_w2_a"], p["hada_w2_b"].reshape(p["hada_w2_b"].shape[0], -1)
    out, fin = a1.shape[0], b1.shape[1]
    rank = a1.shape[1] * a2.shape[1]
    if rank >= min(out, fin):  # wider than the layer: the full delta is the smaller exact form
        return full_to_pair((a1 @ b1) * (a2 @ b2) * scale)
    up = (a1[:, :, None] * a2[:, None, :]).reshape(out, rank) * scale
    down = (b1[:, None, :] * b2[None, :, :]).reshape(rank, fin)
    return down.contiguous(), up.contiguous()


def _lokr_half(p: dict[str, Any], side: str) -> tuple[Any, Any, tuple[int, ...]]:
    """(U, V flat, kernel) of one kron half: factorised halves as stored, full or Tucker ones split at the
    smaller side."""
    import torch

    full = p.get(f"lokr_{side}")
    tucker = p.get(f"lokr_t{side[-1]}")
    if full is None and tucker is not None:
        full = torch.einsum("i j ..., i p, j r -> p r ...", tucker, p[f"lokr_{side}_a"], p[f"lokr_{side}_b"])
    if full is not None:
        u, v = _pair_of(full.reshape(full.shape[0], -1))
        return u, v, tuple(full.shape[2:])
    a, b = p[f"lokr_{side}_a"], p[f"lokr_{side}_b"]
    return a, b.reshape(b.shape[0], -1), tuple(b.shape[2:])


def lokr_pair(p: dict[str, Any], alpha: float | None) -> tuple[Any, Any]:
    import torch

    dim = None
    if "lokr_w1_b" in p:
        dim = p["lokr_w1_b"].shape[0]
    if "lokr_w2_b" in p:
        dim = p["lokr_w2_b"].shape[0]
    scale = _scale(alpha, dim)
    u1, v1, _k1 = _lokr_half(p, "w1")
    u2, v2, kernel = _lokr_half(p, "w2")
    # v2 is [r2, in2·kh·kw]; kron over it keeps the in index b·in2 + d of torch.kron on the 4-D weights.
    up, down = torch.kron(u1, u2), torch.kron(v1, v2)
    out, fin = up.shape[0], down.shape[1]
    if kernel:
        down = down.reshape(down.shape[0], -1, *kernel)
    if up.shape[1] >= min(out, fin):
        delta = up @ down.reshape(down.shape[0], -1)
        return full_to_pair((delta.reshape(out, *down.shape[1:]) if kernel else delta) * scale)
    up = up * scale
    return down.contiguous(), (up[:, :, None, None] if kernel else up).contiguous()


def tucker_locon_down(down: Any, mid: Any) -> Any:
    """LoCon with a Tucker core: ``up @ (mid ×₂ down)`` is again one LoRA pair of the same rank."""
    import torch

    return torch.einsum("m n k l, n j -> m j k l", mid, down.reshape(down.shape[0], -1)).contiguous()


def module_pair(parts: dict[str, Any], alpha: float | None, module: str = "") -> tuple[Any, Any]:
    """The exact LoRA pair of a LyCORIS module; ``module`` (its canonical name) lets a flat conv pair get its
    kernel shape."""
    kind = algorithm(set(parts))
    if kind == "loha":
        down, up = loha_pair(parts, alpha)
    elif kind == "lokr":
        down, up = lokr_pair(parts, alpha)
    else:
        down, up = full_to_pair(parts["diff"].float())
    return with_conv_kernel(module, down, up)


# The UNet convolutions of every SD family, by their kohya/diffusers module name (SGM names are converted to
# these first): resnet and resampler convs and conv_in/out are 3×3, resnet shortcuts 1×1. proj_in/proj_out are
# 1×1 convs in SD1 but linear layers in SD2/SDXL, so their flat pairs stay flat (the loader places them).
_CONV_3X3 = re.compile(r"^lora_unet_(?:.+_resnets_\d+_conv[12]|.+_(?:down|up)samplers_\d+_conv|conv_in|conv_out)$")
_CONV_1X1 = re.compile(r"^lora_unet_.+_resnets_\d+_conv_shortcut$")


def conv_kernel(module: str) -> tuple[int, int] | None:
    if _CONV_3X3.match(module):
        return (3, 3)
    if _CONV_1X1.match(module):
        return (1, 1)
    return None


def with_conv_kernel(module: str, down: Any, up: Any) -> tuple[Any, Any]:
    """A flat pair ([r, in·kh·kw], [out, r]) of a known convolution in kohya's LoCon layout: down [r, in, kh, kw],
    up [out, r, 1, 1]; the layout a bake writes and every reader (A1111, ComfyUI, LyCORIS) expects for a conv."""
    kernel = conv_kernel(module)
    if kernel is None or down.dim() != 2 or up.dim() != 2:
        return down, up
    cells = kernel[0] * kernel[1]
    if down.shape[1] % cells:
        return down, up  # not this kernel after all: the loader's shape check will say so
    down = down.reshape(down.shape[0], down.shape[1] // cells, *kernel)
    return down.contiguous(), up.reshape(*up.shape, 1, 1).contiguous()


def dora_delta(weight: Any, delta: Any, magnitude: Any) -> Any:
    """The effective delta of a DoRA module at strength 1: ``m·(W+ΔW)/‖W+ΔW‖ − W``.

    The norm runs per output row when the magnitude has one value per output (kohya ``wd_on_output``, PEFT),
    else per input column (LyCORIS with wd_on_output off). LyCORIS adds float eps to the norm; so do we."""
    import torch

    merged = weight.float() + delta.float()
    mag = magnitude.float()
    eps = torch.finfo(merged.dtype).eps
    if mag.numel() == merged.shape[0]:
        norm = merged.reshape(merged.shape[0], -1).norm(dim=1) + eps
        scale = mag.reshape(-1) / norm
        return merged * scale.reshape(-1, *[1] * (merged.dim() - 1)) - weight.float()
    norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1) + eps
    scale = mag.reshape(-1) / norm
    return merged * scale.reshape(1, -1, *[1] * (merged.dim() - 2)) - weight.float()
