"""Helpers for the adapter/shelf tests: real PEFT LoRAs injected into the tiny pipelines, and forward probes."""

from __future__ import annotations

import torch

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2", "time_emb_proj", "conv_shortcut"]  # fmt: skip
TE_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def load_pipe(folder):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def add_random_lora(model, targets, *, rank=4, alpha=8.0, seed=1, adapter_name="default", std=0.1):
    """Inject a PEFT LoRA and give lora_B random values (PEFT initialises it to zero = a no-op)."""
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets)
    # peft directly, not model.add_adapter: transformers 5.24's add_adapter demands peft >= 0.22.
    inject_adapter_in_model(cfg, model, adapter_name=adapter_name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name and f".{adapter_name}." in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return cfg


def peft_sd(model, adapter_name="default"):
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model, adapter_name=adapter_name)


def unet_probe(pipe, seed=0):
    """One UNet forward on fixed random inputs (SDXL gets its size/crop conditioning)."""
    unet = pipe.unet
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(2, unet.config.in_channels, 16, 16, generator=gen)
    ctx = torch.randn(2, 7, unet.config.cross_attention_dim, generator=gen)
    kwargs = {}
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, pooled, generator=gen),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2),
        }
    with torch.no_grad():
        return unet(sample, torch.tensor([500, 20]), encoder_hidden_states=ctx, **kwargs).sample


def te_probe(pipe, which="text_encoder"):
    ids = pipe.tokenizer(["a red fox in snow", "a cat"], padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        return getattr(pipe, which)(ids.input_ids)[0]


def injected_modules(model, adapter_name):
    """Names of modules of ``model`` that carry LoRA weights for ``adapter_name``."""
    return {
        name
        for name, mod in model.named_modules()
        if hasattr(mod, "lora_A") and adapter_name in getattr(mod, "lora_A", {})
    }
