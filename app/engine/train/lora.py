"""Attaching PEFT LoRA / DoRA / LoKr layers to the UNet (and optionally the text encoders), and reading them back.

Adapter weights are always fp32, even when the frozen base runs in bf16/fp16: tiny low-rank updates
underflow in half precision.

The three networks are PEFT's own layers: LoRA, LoRA with ``use_dora`` (a learned magnitude per output row),
and LoKr (``LoKrConfig``: PEFT's port of LyCORIS' module, same factorisation and parameter names), so
training, checkpoints and the on/off switch of samples and validation need no second code path.
"""

from __future__ import annotations

import torch

from app.engine.train.config import NETWORKS

UNET_TARGETS = {
    "attention": ["to_q", "to_k", "to_v", "to_out.0"],
    "attention+ff": ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"],
    "attention+ff+conv": [
        "to_q",
        "to_k",
        "to_v",
        "to_out.0",
        "ff.net.0.proj",
        "ff.net.2",
        "proj_in",
        "proj_out",
        "conv1",
        "conv2",
    ],
}
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def adapter_config(network: str, *, rank: int, alpha: float, targets: list[str], lokr_factor: int = -1):
    """The PEFT config of one ``network``; "lora" is exactly the config every earlier run used."""
    from peft import LoKrConfig, LoraConfig

    if network == "lokr":
        # init_weights=True starts lokr_w1 at zero (ΔW = 0, like LoRA's zero B); no Tucker core, as LyCORIS'
        # default (use_tucker off), so conv halves stay plain matrices every reader knows.
        return LoKrConfig(
            r=rank,
            alpha=alpha,
            target_modules=targets,
            decompose_factor=lokr_factor,
            init_weights=True,
            use_effective_conv2d=False,
        )
    if network not in ("lora", "dora"):
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}")
    extra = {"use_dora": True} if network == "dora" else {}
    return LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets, **extra)


def attach_lora(
    module, *, rank: int, alpha: float, targets: list[str], seed: int, network: str = "lora", lokr_factor: int = -1
) -> list[torch.nn.Parameter]:
    """Freeze ``module``, add an adapter named "default" (LoRA, DoRA or LoKr), return its (fp32) trainable
    parameters."""
    module.requires_grad_(False)
    # Same seed on every rank and every run: identical initial LoRA A matrices (resume and DDP rely on it).
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        config = adapter_config(network, rank=rank, alpha=alpha, targets=targets, lokr_factor=lokr_factor)
        if hasattr(module, "add_adapter") and hasattr(module, "set_adapters"):
            module.add_adapter(config)  # diffusers models (UNet)
        else:
            from peft import inject_adapter_in_model

            inject_adapter_in_model(config, module, adapter_name="default")
    finally:
        torch.random.set_rng_state(state)
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    return params


def without_magnitude_decay(groups: list[dict], modules: list) -> list[dict]:
    """Optimiser groups with DoRA's magnitudes moved into twins without weight decay.

    A magnitude starts at the base layer's row norm ‖W‖, so decay toward 0 would shrink the layer instead of
    pulling the adapter back toward "no change" as it does for the LoRA pair. Without DoRA the groups come
    back as they were (LoRA and LoKr runs keep their optimiser layout)."""
    magnitudes = {id(p) for m in modules for n, p in m.named_parameters() if "lora_magnitude_vector" in n}
    if not magnitudes:
        return groups
    out = []
    for group in groups:
        out.append({**group, "params": [p for p in group["params"] if id(p) not in magnitudes]})
        own = [p for p in group["params"] if id(p) in magnitudes]
        if own:
            out.append({**group, "params": own, "weight_decay": 0.0})
    return out


def lora_state_dict(module) -> dict[str, torch.Tensor]:
    """The adapter's weights with PEFT names (``…to_q.lora_A.weight``, ``…lora_magnitude_vector``, ``…lokr_w1``),
    fp32, on CPU, contiguous."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(module).items()}


def load_lora_state_dict(module, state: dict[str, torch.Tensor]) -> None:
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(module, state)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise ValueError(f"checkpoint has {len(unexpected)} LoRA keys this model lacks, e.g. {unexpected[0]}")


def set_lora_enabled(module, enabled: bool) -> None:
    """Switch the LoRA layers of ``module`` off (base model behaviour) or back on."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for layer in module.modules():
        if isinstance(layer, BaseTunerLayer):
            layer.enable_adapters(enabled)
