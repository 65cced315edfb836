"""Test adapters: real PEFT LoRAs on the tiny models, saved through the engine's own writer (kohya layout).

``lora_B`` starts at zero in PEFT (an untrained LoRA changes nothing); here it is filled with seeded
random values so each adapter visibly changes the image, as a trained one would.
"""

from __future__ import annotations

from pathlib import Path

_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def make_lora(
    model_dir: Path,
    out: Path,
    *,
    seed: int,
    family: str = "sd1",
    rank: int = 4,
    scale: float = 0.5,
    text_encoder: bool = False,
    trigger: str = "",
    title: str = "",
    targets: list[str] | None = None,
    thumbnail: bool = False,
) -> Path:
    """Write a rank-``rank`` LoRA for the tiny model in ``model_dir`` (UNet, optionally text encoder).

    ``targets``: the UNet module names it adapts (default: every attention projection).
    ``thumbnail``: store a small flat-colour thumbnail (what the shelf cards show), its colour set by ``seed``."""
    import torch
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from PIL import Image

    from app.engine.adapters import save_adapter

    def randomised(model, targets):
        # inject_adapter_in_model works for both models (transformers' add_adapter wants peft >= 0.22).
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=True)
        model = inject_adapter_in_model(config, model)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=gen) * scale)
        return get_peft_model_state_dict(model)

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    te_sd = None
    if text_encoder:
        from transformers import CLIPTextModel

        te = CLIPTextModel.from_pretrained(model_dir / "text_encoder")
        te_sd = randomised(te, ["q_proj", "k_proj", "v_proj", "out_proj"])
    thumb = Image.new("RGB", (64, 64), ((seed * 70) % 255, 120, 200)) if thumbnail else None
    return save_adapter(
        out,
        unet=randomised(unet, targets or _TARGETS),
        text_encoder=te_sd,
        rank=rank,
        alpha=rank,
        family=family,
        title=title or out.stem,
        trigger_phrase=trigger,
        thumbnail=thumb,
    )
