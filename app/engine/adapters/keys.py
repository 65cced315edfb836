"""LoRA key layouts and the conversion of each into one canonical form: kohya names with diffusers paths.

Canonical module name: ``lora_unet_<diffusers module path, dots → _>`` (``lora_te_``/``lora_te1_``/
``lora_te2_`` for text encoders). Every layout we read maps onto it:

- kohya: ``lora_unet_down_blocks_1_…_to_q.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``
- kohya SGM (what sd-scripts writes for SDXL): ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q…``
- diffusers: ``unet.….lora.down.weight``, ``text_encoder.….lora_linear_layer.down.weight``, and the old
  attention-processor spelling ``….processor.to_q_lora.down.weight``
- PEFT: ``….lora_A.weight`` / ``….lora_B.weight`` (optionally ``unet.``/``text_encoder.`` or
  ``base_model.model.`` prefixed), alphas from the ``lora_adapter_metadata`` header entry.

Why canonicalise on kohya names with diffusers paths: that is the layout we write (AUTOMATIC1111,
ComfyUI, InvokeAI and diffusers all load it), and the mapping from a dotted module path is lossless,
so a loaded pipeline can match every name exactly via ``path.replace(".", "_")``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

COMPONENT_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}
SDXL_COMPONENT_PREFIX = {"unet": "lora_unet_", "text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}
PREFIX_COMPONENT = {
    "lora_unet_": "unet",
    "lora_te_": "text_encoder",
    "lora_te1_": "text_encoder",
    "lora_te2_": "text_encoder_2",
}

_KOHYA = re.compile(r"^(lora_unet|lora_te1|lora_te2|lora_te)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$")
_DIFFUSERS = re.compile(r"^(unet|text_encoder_2|text_encoder)\.(.+?)\.(lora|lora_linear_layer)\.(down|up)\.weight$")
_DIFFUSERS_PROC = re.compile(
    r"^(unet|text_encoder_2|text_encoder)\.(.+?)\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$"
)
_DIFFUSERS_ALPHA = re.compile(r"^(unet|text_encoder_2|text_encoder)\.(.+)\.alpha$")
_PEFT = re.compile(
    r"^(?:base_model\.model\.)?(?:(unet|text_encoder_2|text_encoder)\.)?(.+)\.lora_(A|B)(?:\.[\w-]+)?\.weight$"
)
_SGM_ROOT = re.compile(r"(input_blocks|middle_block|output_blocks|time_embed_|label_emb|out_2$)")
# Weight kinds we recognise as adapters but do not support: named in the refusal.
_UNSUPPORTED = re.compile(r"(hada_w|lokr_w|dora_scale|lora_magnitude_vector|lora_mid\.|\.oft_|lora_embedding_)")

_TE_PROC = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
_UNET_PROC = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}


@dataclass(frozen=True)
class KeyRole:
    module: str  # canonical kohya module name (component prefix included)
    part: str  # down | up | alpha
    layout: str  # kohya | kohya-sgm | diffusers | peft
    peft_names: bool = False  # lora_A/lora_B naming: alphas come from ``lora_adapter_metadata``


def split_module(module: str) -> tuple[str, str]:
    """``lora_te1_text_model_…`` → (``lora_te1_``, ``text_model_…``)."""
    for prefix in PREFIX_COMPONENT:
        if module.startswith(prefix):
            return prefix, module[len(prefix) :]
    raise ValueError(f"not a kohya module name: {module}")


def component_of(module: str) -> str:
    return PREFIX_COMPONENT[split_module(module)[0]]


def te_path(underscored: str) -> str:
    """Text-encoder module paths always carry CLIP's ``text_model`` level in canonical names.

    transformers 5 flattened ``CLIPTextModel`` (modules are ``encoder.layers.0…``), but every other tool
    (AUTOMATIC1111, ComfyUI, kohya, older diffusers) spells ``text_model.encoder.layers.0…``.
    """
    if underscored.startswith(("text_model_", "text_projection")):
        return underscored
    return "text_model_" + underscored


def kohya_name(component: str, dotted_path: str, *, sdxl: bool = False) -> str:
    table = SDXL_COMPONENT_PREFIX if sdxl else COMPONENT_PREFIX
    path = dotted_path.replace(".", "_")
    return table[component] + (path if component == "unet" else te_path(path))


def classify_key(key: str) -> KeyRole | None:
    """The role of one tensor key in its layout, or None when it is not a (supported) LoRA key."""
    m = _KOHYA.match(key)
    if m:
        prefix, path, suffix = m.groups()
        part = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}[suffix]
        if prefix == "lora_unet" and _SGM_ROOT.match(path):
            return KeyRole(f"lora_unet_{path}", part, "kohya-sgm")
        return KeyRole(f"{prefix}_{path if prefix == 'lora_unet' else te_path(path)}", part, "kohya")
    m = _DIFFUSERS_PROC.match(key)
    if m:
        component, path, proj, part = m.groups()
        path = path.removesuffix(".processor")
        proj_path = (_UNET_PROC if component == "unet" else _TE_PROC)[proj]
        return KeyRole(kohya_name(component, f"{path}.{proj_path}"), part, "diffusers")
    m = _DIFFUSERS.match(key)
    if m:
        component, path, _kind, part = m.groups()
        return KeyRole(kohya_name(component, path), part, "diffusers")
    m = _DIFFUSERS_ALPHA.match(key)
    if m:
        component, path = m.groups()
        return KeyRole(kohya_name(component, path), "alpha", "diffusers")
    m = _PEFT.match(key)
    if m:
        component, path, ab = m.groups()
        # diffusers' own save_lora_weights writes PEFT names under a component prefix (``unet.…lora_A``).
        layout = "peft" if component is None else "diffusers"
        if component is None:
            te = path.startswith(("text_model.", "encoder.layers.", "embeddings.", "text_projection"))
            component = "text_encoder" if te else "unet"
        return KeyRole(kohya_name(component, path), "down" if ab == "A" else "up", layout, peft_names=True)
    return None


def is_unsupported_adapter_key(key: str) -> bool:
    return bool(_UNSUPPORTED.search(key))


# --- SGM (LDM) block names → diffusers paths, for SDXL files written by kohya sd-scripts ------------------

_RESNET_INNER = (
    ("in_layers_2", "conv1"),
    ("out_layers_3", "conv2"),
    ("emb_layers_1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
)


def _resnet_inner(rest: str) -> str:
    for old, new in _RESNET_INNER:
        if rest == old or rest.startswith(old + "_"):
            return new + rest[len(old) :]
    return rest


# SGM (kohya SDXL) names of the UNet's top-level layers ↔ diffusers names; one table, both directions.
_SGM_TOP = {"time_embed_0": "time_embedding_linear_1", "time_embed_2": "time_embedding_linear_2",
            "label_emb_0_0": "add_embedding_linear_1", "label_emb_0_2": "add_embedding_linear_2",
            "out_2": "conv_out", "input_blocks_0_0": "conv_in"}  # fmt: skip
_DIFFUSERS_TOP = {new: old for old, new in _SGM_TOP.items()}


def sgm_to_diffusers(module: str, layers_per_block: int = 2) -> str:
    """Map one ``lora_unet_<sgm path>`` name to ``lora_unet_<diffusers path>`` (both underscored).

    SDXL's UNet: input block i (i ≥ 1) is layer (i-1) % (L+1) of down block (i-1) // (L+1), the last
    layer of each block being its downsampler; output block i is layer i % (L+1) of up block i // (L+1);
    within a block, sub-module 0 is the resnet, 1 the transformer (or the upsampler in blocks without
    attention) and 2 the upsampler.
    """
    body = module[len("lora_unet_") :]
    if body in _SGM_TOP:
        return "lora_unet_" + _SGM_TOP[body]
    m = re.match(r"input_blocks_(\d+)_(\d+)_(.+)$", body)
    if m:
        i, sub, rest = int(m[1]), int(m[2]), m[3]
        block, layer = divmod(i - 1, layers_per_block + 1)
        if layer == layers_per_block:  # the downsampler: ``op`` is diffusers' ``conv``
            return f"lora_unet_down_blocks_{block}_downsamplers_0_{'conv' if rest == 'op' else rest}"
        if sub == 0:
            return f"lora_unet_down_blocks_{block}_resnets_{layer}_{_resnet_inner(rest)}"
        return f"lora_unet_down_blocks_{block}_attentions_{layer}_{rest}"
    m = re.match(r"middle_block_(\d+)_(.+)$", body)
    if m:
        i, rest = int(m[1]), m[2]
        if i == 1:
            return f"lora_unet_mid_block_attentions_0_{rest}"
        return f"lora_unet_mid_block_resnets_{i // 2}_{_resnet_inner(rest)}"
    m = re.match(r"output_blocks_(\d+)_(\d+)_(.+)$", body)
    if m:
        i, sub, rest = int(m[1]), int(m[2]), m[3]
        block, layer = divmod(i, layers_per_block + 1)
        if sub == 0:
            return f"lora_unet_up_blocks_{block}_resnets_{layer}_{_resnet_inner(rest)}"
        if sub == 2 or rest == "conv" or rest.startswith("conv_"):
            return f"lora_unet_up_blocks_{block}_upsamplers_0_{rest}"
        return f"lora_unet_up_blocks_{block}_attentions_{layer}_{rest}"
    return module


def diffusers_to_sgm(module: str, layers_per_block: int = 2) -> str:
    """Inverse of ``sgm_to_diffusers`` (used to write SGM-named test files and to show kohya names)."""
    body = module[len("lora_unet_") :]
    if body in _DIFFUSERS_TOP:
        return "lora_unet_" + _DIFFUSERS_TOP[body]
    inverse_inner = {new: old for old, new in _RESNET_INNER}

    def res(rest: str) -> str:
        for new, old in inverse_inner.items():
            if rest == new or rest.startswith(new + "_"):
                return old + rest[len(new) :]
        return rest

    m = re.match(r"down_blocks_(\d+)_(resnets|attentions|downsamplers)_(\d+)_(.+)$", body)
    if m:
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            i = 1 + block * (layers_per_block + 1) + layers_per_block
            return f"lora_unet_input_blocks_{i}_0_{'op' if rest == 'conv' else rest}"
        i = 1 + block * (layers_per_block + 1) + layer
        return f"lora_unet_input_blocks_{i}_{0 if kind == 'resnets' else 1}_{res(rest) if kind == 'resnets' else rest}"
    m = re.match(r"mid_block_(resnets|attentions)_(\d+)_(.+)$", body)
    if m:
        kind, layer, rest = m[1], int(m[2]), m[3]
        if kind == "attentions":
            return f"lora_unet_middle_block_1_{rest}"
        return f"lora_unet_middle_block_{layer * 2}_{res(rest)}"
    m = re.match(r"up_blocks_(\d+)_(resnets|attentions|upsamplers)_(\d+)_(.+)$", body)
    if m:
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            i = block * (layers_per_block + 1) + layers_per_block
            return f"lora_unet_output_blocks_{i}_2_{rest}"
        i = block * (layers_per_block + 1) + layer
        return f"lora_unet_output_blocks_{i}_{0 if kind == 'resnets' else 1}_{res(rest) if kind == 'resnets' else rest}"
    return module


# --- PEFT alphas ------------------------------------------------------------------------------------------


def peft_alphas(metadata: dict[str, str], module_ranks: dict[str, int]) -> dict[str, float]:
    """Per-module alpha for a PEFT-layout file, from diffusers' ``lora_adapter_metadata`` header entry.

    Without it the PEFT convention applies: alpha = rank (scale 1). ValueError when the entry is there
    but malformed (a guessed alpha would silently change the adapter's strength).
    """
    raw = metadata.get("lora_adapter_metadata")
    config: dict[str, Any] = {}
    if raw:
        try:
            config = json.loads(raw)
        except (ValueError, RecursionError):
            raise ValueError("its lora_adapter_metadata entry is not valid JSON") from None
        if not isinstance(config, dict):
            raise ValueError("its lora_adapter_metadata entry is not a JSON object")
    out: dict[str, float] = {}
    for module, rank in module_ranks.items():
        component = component_of(module)
        path_underscored = split_module(module)[1]
        # Keys in the metadata are ``<component>.lora_alpha`` / ``.alpha_pattern`` (diffusers), or bare.
        alpha = config.get(f"{component}.lora_alpha", config.get("lora_alpha"))
        pattern = config.get(f"{component}.alpha_pattern", config.get("alpha_pattern")) or {}
        if not isinstance(pattern, dict):
            raise ValueError("its alpha_pattern is not a JSON object")
        for pat, value in pattern.items():
            # PEFT matches a pattern against the end of the dotted module name; compare underscored forms.
            if re.search(rf"(^|_){re.escape(pat.replace('.', '_'))}$", path_underscored):
                alpha = value
                break
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))):
            raise ValueError(f"its alpha for {module} is {alpha!r}, not a number")
        out[module] = float(alpha) if alpha is not None else float(rank)
    return out
