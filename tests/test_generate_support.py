"""Test adapters for the generation tests: real PEFT LoRAs on the tiny models, saved as our kohya files.

``lora_B`` starts at zero in PEFT (an untrained LoRA changes nothing); here it is filled with seeded
random values so each adapter visibly changes the image, as a trained one would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def make_lora(
    model_dir: Path,
    out: Path,
    *,
    family: str,
    seed: int,
    rank: int = 4,
    scale: float = 0.5,
    text_encoder: bool = False,
    trigger: str = "",
    title: str = "",
    targets: list[str] | None = None,
) -> Path:
    """Write a rank-``rank`` LoRA for the tiny model in ``model_dir`` (UNet, optionally text encoder).

    ``targets``: the UNet module names it adapts (default: every attention projection)."""
    import torch
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

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
    return save_adapter(
        out,
        unet=randomised(unet, targets or _TARGETS),
        text_encoder=te_sd,
        rank=rank,
        alpha=rank,
        family=family,
        title=title or out.stem,
        trigger_phrase=trigger,
    )


def test_made_adapters_are_not_empty(tiny_sd15, tmp_path):
    from safetensors import safe_open

    path = make_lora(tiny_sd15, tmp_path / "x.safetensors", family="sd1", seed=1, text_encoder=True, trigger="xyz")
    with safe_open(str(path), "pt") as f:
        ups = [f.get_tensor(k) for k in f.keys() if k.endswith("lora_up.weight")]
        keys = list(f.keys())
        meta = f.metadata()
    assert ups and all(float(t.abs().sum()) > 0 for t in ups)
    assert any(k.startswith("lora_te_") for k in keys) and any(k.startswith("lora_unet_") for k in keys)
    assert meta["modelspec.trigger_phrase"] == "xyz"


@pytest.fixture(scope="session")
def sd15_loras(tiny_sd15, tmp_path_factory):
    """Three SD1 adapters: a (trigger 'inkwash'), b, and c with a text-encoder part."""
    folder = tmp_path_factory.mktemp("loras")
    return {
        "a": make_lora(tiny_sd15, folder / "style-a.safetensors", family="sd1", seed=1, trigger="inkwash"),
        "b": make_lora(tiny_sd15, folder / "style-b.safetensors", family="sd1", seed=2),
        "c": make_lora(tiny_sd15, folder / "style-c.safetensors", family="sd1", seed=3, text_encoder=True),
    }


def test_shelf_card_says_whether_an_adapter_has_a_text_encoder_part(sd15_loras):
    from app.engine import facade

    assert facade.adapter_card(str(sd15_loras["c"])).has_text_encoder
    assert not facade.adapter_card(str(sd15_loras["a"])).has_text_encoder
    listed = {c.path: c for c in facade.list_adapters()}  # the library's entries carry it too
    assert all(not c.has_text_encoder for c in listed.values() if "styles" in c.path)  # bundled: UNet only

