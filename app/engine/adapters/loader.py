"""Load an adapter of any layout into a diffusers pipeline, and say exactly how much of it applied.

diffusers' ``load_lora_weights`` only *warns* about keys it cannot place, so a file for another model can
"load" and silently do nothing. Here every module is matched against the pipeline first (exact names,
shapes checked), the count of matched / unmatched modules is reported, and an adapter that would change
nothing is refused. A shape mismatch is refused before diffusers is called, so the adapter name stays free.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.engine.adapters.info import UNKNOWN, AdapterInfo, read_adapter_snapshot
from app.engine.adapters.keys import classify_key, component_of, peft_alphas, sgm_to_diffusers, split_module, te_path
from app.engine.adapters.lycoris import (
    algorithm,
    classify_lycoris_key,
    dora_delta,
    full_to_pair,
    module_pair,
    tucker_locon_down,
)
from app.engine.adapters.strength import judge as judge_strength
from app.engine.adapters.strength import layer_norm
from app.engine.errors import AdapterError
from app.engine.models.families import families_compatible, family_label, is_demo_unet
from app.engine.safetensors_file import short_repr

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@dataclass
class LoraModule:
    down: Any  # Tensor [r, in] or [r, in, kh, kw] (a LoHa conv arrives flat, [r, in·kh·kw], until placed)
    up: Any  # Tensor [out, r] or [out, r, 1, 1]
    alpha: float  # scale = alpha / rank
    dora_scale: Any = None  # DoRA magnitude: the delta is then computed against the base layer (see lycoris.py)
    algorithm: str = "lora"  # lora | loha | lokr | full: what the file stored, converted to this exact pair
    bias: Any = None  # a full diff's bias delta (``diff_b``), applied as the up layer's bias

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass
class LoadReport:
    adapter_name: str
    path: str
    info: AdapterInfo
    matched: int  # modules placed in the pipeline
    unmatched: int  # modules of the file with no counterpart in this pipeline
    unmatched_names: list[str] = field(default_factory=list)  # the first few, for the message
    components: dict[str, int] = field(default_factory=dict)  # matched modules per component
    base_family: str = UNKNOWN
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.matched > 0 and self.unmatched == 0


def _layers_per_block(unet_config: Any) -> int:
    lpb = getattr(unet_config, "layers_per_block", 2) if unet_config is not None else 2
    return int(lpb[0] if isinstance(lpb, (list, tuple)) else lpb)


def read_lora_modules(
    path: str | os.PathLike[str], *, unet_config: Any = None, check_finite: bool = True
) -> tuple[AdapterInfo, dict[str, LoraModule]]:
    """Load and validate all LoRA modules of ``path`` in canonical kohya/diffusers-path names.

    Kohya files without ``.alpha`` and diffusers/PEFT files without adapter metadata get alpha = rank
    (scale 1), the convention of the tools that write them.
    """
    info, blob = read_adapter_snapshot(path)  # read into memory: a memory map dies if the file shrinks
    return info, lora_modules_from_bytes(info, blob, unet_config=unet_config, check_finite=check_finite)


def lora_modules_from_bytes(
    info: AdapterInfo, blob: bytes, *, unet_config: Any = None, check_finite: bool = True
) -> dict[str, LoraModule]:
    """The validated LoRA modules of a file already read (``read_adapter_snapshot``), canonical names."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(info.path)
    try:
        raw = load(blob)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise AdapterError(f"{path.name}: cannot read tensors ({err}).") from None
    lpb = _layers_per_block(unet_config)
    downs: dict[str, Any] = {}
    ups: dict[str, Any] = {}
    alphas: dict[str, float] = {}
    peft_modules: set[str] = set()
    lycoris: dict[str, dict[str, Any]] = {}
    for key, tensor in sorted(raw.items()):  # deterministic: the Rust loader returns no fixed order
        if check_finite and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise AdapterError(
                f"{path.name}: tensor {short_repr(key)} contains NaN or Inf values; the adapter is broken."
            )
        lyco = classify_lycoris_key(key)
        if lyco is not None:
            name, part, layout = lyco
            lycoris.setdefault(sgm_to_diffusers(name, lpb) if layout == "kohya-sgm" else name, {})[part] = (
                tensor.float()
            )
            continue
        role = classify_key(key)
        assert role is not None  # analyse_keys (in read_adapter_info) refused anything else
        module = sgm_to_diffusers(role.module, lpb) if role.layout == "kohya-sgm" else role.module
        if role.part == "alpha":
            alphas[module] = float(tensor.float().item())
        else:
            (downs if role.part == "down" else ups)[module] = tensor
            if role.peft_names:
                peft_modules.add(module)
    if peft_modules:
        try:
            alphas.update(peft_alphas(info.metadata, {m: int(downs[m].shape[0]) for m in peft_modules}))
        except ValueError as err:
            raise AdapterError(f"{path.name}: {err}; its strength cannot be known.") from None
    modules: dict[str, LoraModule] = {}
    for name, down in downs.items():
        up = ups[name]
        extra = lycoris.pop(name, {})
        if "lora_mid" in extra:  # LoCon with a Tucker core
            down = tucker_locon_down(down.float(), extra["lora_mid"])
        if down.shape[0] != up.shape[1] or down.dim() != up.dim():
            raise AdapterError(f"{path.name}: {name} has down {tuple(down.shape)} but up {tuple(up.shape)}.")
        modules[name] = LoraModule(down, up, alphas.get(name, float(down.shape[0])), extra.get("dora_scale"))
    for name, parts in lycoris.items():
        # Scale folded into the pair, so alpha = rank (scale 1) whatever the stored alpha was.
        down, up = module_pair(parts, alphas.get(name), name)
        modules[name] = LoraModule(
            down, up, float(down.shape[0]), parts.get("dora_scale"), algorithm(set(parts)), parts.get("diff_b")
        )
    return modules


def pipeline_family(pipe: Any) -> str:
    """The family of a loaded base pipeline, from its UNet (``unknown`` for tiny/custom models)."""
    unet = getattr(pipe, "unet", None)
    if unet is None:
        return UNKNOWN
    width = unet.config.cross_attention_dim
    if getattr(pipe, "text_encoder_2", None) is not None or unet.config.addition_embed_type == "text_time":
        return "sdxl" if width == 2048 else UNKNOWN
    if is_demo_unet(dict(unet.config)):
        return "demo"
    if width == 768:
        return "sd1"
    if width == 1024:
        pred = getattr(getattr(pipe, "scheduler", None), "config", {}).get("prediction_type", "epsilon")
        return "sd2-v" if pred == "v_prediction" else "sd2"
    return UNKNOWN


def _target_table(model: Any, component: str) -> dict[str, Any]:
    """Canonical underscored module path → (dotted name, the Linear/Conv layer or the base layer LoRA wraps)."""
    import torch

    table = {}
    for name, mod in model.named_modules():
        if ".lora_" in name or name.endswith(".base_layer") or ".base_layer." in name:
            continue
        base = getattr(mod, "base_layer", mod)
        if isinstance(base, (torch.nn.Linear, torch.nn.Conv2d)):
            path = name.replace(".", "_")
            table[path if component == "unet" else te_path(path)] = (name, base)
    return table


def base_layer_norms(pipe: Any) -> Callable[[str], float | None]:
    """``module → ‖W‖_F`` of the base layer a canonical LoRA module name targets in ``pipe`` (None: no
    such layer), for ``strength.judge``."""
    tables = {c: _target_table(getattr(pipe, c), c) for c in COMPONENTS if getattr(pipe, c, None) is not None}

    def lookup(name: str) -> float | None:
        target = tables.get(component_of(name), {}).get(split_module(name)[1])
        return layer_norm(target[1]) if target is not None else None

    return lookup


def _shape_problem(module: LoraModule, layer: Any) -> str:
    import torch

    down, up = module.down, module.up
    if isinstance(layer, torch.nn.Linear):
        if down.dim() != 2 or down.shape[1] != layer.in_features or up.shape[0] != layer.out_features:
            return (
                f"LoRA {tuple(up.shape[:1])}×{tuple(down.shape[1:])} vs layer {layer.out_features}×{layer.in_features}"
            )
        return ""
    if down.dim() != 4 or down.shape[1] != layer.in_channels or up.shape[0] != layer.out_channels:
        return f"LoRA down {tuple(down.shape)} / up {tuple(up.shape)} vs conv {tuple(layer.weight.shape)}"
    if tuple(down.shape[2:]) not in ((1, 1), tuple(layer.kernel_size)):
        return f"kernel {tuple(down.shape[2:])} vs conv kernel {tuple(layer.kernel_size)}"
    return ""


def _unflatten_for(module: LoraModule, layer: Any) -> LoraModule:
    """A LoHa on a convolution stores its down factor flat ([r, in·kh·kw]): give it the layer's kernel shape."""
    import torch

    if not isinstance(layer, torch.nn.Conv2d) or module.down.dim() != 2:
        return module
    shape = tuple(layer.weight.shape)
    if module.down.shape[1] != shape[1] * shape[2] * shape[3]:
        return module  # reported by the shape check
    down = module.down.reshape(module.down.shape[0], *shape[1:])
    return dataclasses.replace(module, down=down, up=module.up.reshape(*module.up.shape[:2], 1, 1))


def _dora_applied(module: LoraModule, layer: Any) -> LoraModule:
    """DoRA's effective delta against this base layer, as an exact (full-rank) LoRA pair with scale 1."""
    weight = layer.weight.detach()
    out = weight.shape[0]
    delta = (module.up.float().reshape(out, -1) @ module.down.float().reshape(module.rank, -1)) * module.scale
    down, up = full_to_pair(dora_delta(weight, delta.reshape(weight.shape), module.dora_scale))
    return LoraModule(down, up, float(down.shape[0]), None, module.algorithm + "+dora")


def to_peft_state_dict(modules: dict[str, LoraModule]) -> dict[str, Any]:
    """``<component>.<exact module path>.lora_A/B.weight`` with the scale folded into lora_B.

    Why not hand diffusers the kohya names: its kohya conversion guesses module paths by string
    replacement and silently drops modules it guesses wrong (e.g. SDXL's ``add_embedding``). Exact names
    need no guessing. A dict carries no alphas, so diffusers uses scale 1 and we multiply lora_B by
    alpha / rank: exact when that is a power of two (alpha = rank, rank/2, 1 with rank 16, …), otherwise
    within one float rounding of the unfolded product.
    """
    sd: dict[str, Any] = {}
    for name, m in modules.items():
        sd[f"{name}.lora_A.weight"] = m.down
        sd[f"{name}.lora_B.weight"] = m.up if m.scale == 1.0 else m.up * m.scale
        if m.bias is not None:  # diffusers then turns on PEFT's lora_bias; modules without one keep a zero bias
            sd[f"{name}.lora_B.bias"] = m.bias
    return sd


def _injected(model: Any, adapter_name: str) -> int:
    return sum(1 for _n, mod in model.named_modules() if adapter_name in (getattr(mod, "lora_A", None) or {}))


def loaded_adapter_names(pipe: Any) -> set[str]:
    names: set[str] = set()
    for component in COMPONENTS:
        model = getattr(pipe, component, None)
        if model is not None and getattr(model, "peft_config", None):
            names.update(model.peft_config)
    return names


def load_into_pipeline(
    pipe: Any, path: str | os.PathLike[str], adapter_name: str, *, base_family: str | None = None
) -> LoadReport:
    """Load ``path`` (any layout) into ``pipe`` as ``adapter_name``; report matched/unmatched modules.

    Raises AdapterError when the file is refused, a shape does not fit the base (nothing is loaded),
    the name is taken, or no module matches (the adapter would silently do nothing).
    """
    path = Path(path)
    if adapter_name in loaded_adapter_names(pipe):
        raise AdapterError(f"An adapter named {adapter_name!r} is already loaded; unload it or pick another name.")
    info, modules = read_lora_modules(path, unet_config=getattr(getattr(pipe, "unet", None), "config", None))
    base = base_family or pipeline_family(pipe)
    # The demo family is read from shapes on both sides, so a mismatch there is certain; other labels may be
    # wrong, and for them the per-layer shape check below decides.
    if "demo" in (info.family, base) and not families_compatible(info.family, base):
        raise AdapterError(
            f"{path.name} is a {family_label(info.family)} adapter ({info.family_reason}); the base model is "
            f"{family_label(base)}, whose layers have other shapes, so it cannot apply.",
            hint=f"Pick a {family_label(info.family)} base model, or an adapter made for {family_label(base)}.",
        )
    sdxl_pipe = getattr(pipe, "text_encoder_2", None) is not None
    tables = {c: _target_table(getattr(pipe, c), c) for c in COMPONENTS if getattr(pipe, c, None) is not None}
    matched: dict[str, LoraModule] = {}
    fitted: dict[str, tuple[LoraModule, Any]] = {}  # module → (LoRA, base layer): the update's size is judged
    unmatched: list[str] = []
    per_component: dict[str, int] = {}
    for name, module in modules.items():
        component = component_of(name)
        prefix, path_part = split_module(name)
        if prefix == "lora_te_" and sdxl_pipe:
            name = "lora_te1_" + path_part  # an SD1-style text-encoder key on SDXL means text encoder 1
        target = tables.get(component, {}).get(path_part)
        if target is None:
            unmatched.append(name)
            continue
        dotted, layer = target
        module = _unflatten_for(module, layer)
        problem = _shape_problem(module, layer)
        if problem:
            raise AdapterError(
                f"{path.name} does not fit this base model: {name}: {problem}.",
                hint=f"The adapter is for {family_label(info.family)} ({info.family_reason}); the base is "
                f"{family_label(base)}.",
            )
        matched[f"{component}.{dotted}"] = _dora_applied(module, layer) if module.dora_scale is not None else module
        fitted[name] = (module, layer)
        per_component[component] = per_component.get(component, 0) + 1
    if not matched:
        raise AdapterError(
            f"{path.name}: none of its {len(modules)} LoRA modules exist in this base model, so it would do nothing.",
            hint=f"The adapter is for {info.family} ({info.family_reason}); the base is {base}.",
        )
    warnings = list(info.warnings)
    if UNKNOWN not in (info.family, base) and info.family != base:
        warnings.append(f"Adapter made for {info.family} ({info.family_reason}), base model is {base}.")
    if unmatched:
        warnings.append(
            f"{len(unmatched)} of {len(modules)} modules have no counterpart in this base model and are ignored."
        )
    warnings += judge_strength({n: m for n, (m, _) in fitted.items()}, lambda n: layer_norm(fitted[n][1])).warnings
    try:
        pipe.load_lora_weights(to_peft_state_dict(matched), adapter_name=adapter_name)
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        # Shapes were checked above, so this is unexpected; still never leave half an adapter behind.
        unload_adapter(pipe, adapter_name)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise AdapterError(f"{path.name}: diffusers could not load it ({first}).", details=str(err)) from None
    # Verify diffusers placed what we matched: count, never assume.
    placed = {c: _injected(getattr(pipe, c), adapter_name) for c in per_component}
    lost = sum(per_component.values()) - sum(placed.values())
    if lost:
        if sum(placed.values()) == 0:
            unload_adapter(pipe, adapter_name)
            raise AdapterError(f"{path.name}: diffusers could not place any of its modules; it would do nothing.")
        warnings.append(f"diffusers could not place {lost} matched modules; they are ignored.")
    return LoadReport(
        adapter_name=adapter_name,
        path=str(path),
        info=info,
        matched=sum(placed.values()),
        unmatched=len(unmatched) + lost,
        unmatched_names=unmatched[:10],
        components=placed,
        base_family=base,
        warnings=warnings,
    )


def unload_adapter(pipe: Any, adapter_name: str) -> None:
    if adapter_name in loaded_adapter_names(pipe):
        pipe.delete_adapters(adapter_name)
