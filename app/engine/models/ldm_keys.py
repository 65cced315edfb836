"""Key mapping from diffusers/transformers state dicts to the original LDM single-file layout.

The original Stable Diffusion code (CompVis / Stability "ldm" and "sgm") names things differently:

UNet (``model.diffusion_model.``)
    input_blocks.0.0 = conv_in; then per down block b, for each layer j < L (L = layers_per_block):
    input_blocks.[1 + b(L+1) + j] = [resnet, attention?], and the downsampler is its own input block
    input_blocks.[(b+1)(L+1)].0.op. middle_block.0/1/2 = resnet, attention, resnet. Up block b has L+1
    layers: output_blocks.[b(L+1) + j] = [resnet, attention?, upsampler? (last layer)]. Resnets:
    in_layers.0/2 = norm1/conv1, emb_layers.1 = time_emb_proj, out_layers.0/3 = norm2/conv2,
    skip_connection = conv_shortcut. Transformer blocks keep diffusers' names. time_embed.0/2,
    label_emb.0.0/0.2 (SDXL size conditioning), out.0/2 = conv_norm_out/conv_out.
VAE (``first_stage_model.``)
    encoder.down.i.block.j (nin_shortcut = conv_shortcut), encoder.down.i.downsample.conv; the decoder's
    up blocks are numbered in reverse (decoder.up.[n-1-i]); mid.block_1/2, mid.attn_1 with q/k/v/proj_out
    as 1x1 convolutions and norm; norm_out = conv_norm_out.
Text encoders
    OpenAI CLIP keeps the transformers names under ``…transformer.text_model.``. OpenCLIP (SD2's encoder,
    SDXL's second) uses resblocks.N.{ln_1, ln_2, attn.in_proj_* (q, k, v fused), attn.out_proj,
    mlp.c_fc, mlp.c_proj}, token_embedding, positional_embedding, ln_final and text_projection (stored
    transposed, as x @ P).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _resnet_tail(tail: str) -> str:
    head, _, rest = tail.partition(".")
    return f"{_RESNET.get(head, head)}.{rest}"


def _block_tail(kind: str, tail: str) -> str:
    """Inside an input/output block, slot 0 is the resnet and slot 1 the attention."""
    return f"0.{_resnet_tail(tail)}" if kind == "resnets" else f"1.{tail}"


def unet_to_ldm(state: Mapping[str, Any], layers_per_block: int | list[int]) -> dict[str, Any]:
    """Rename a diffusers UNet2DConditionModel state dict to ``model.diffusion_model.*`` keys."""
    if isinstance(layers_per_block, (list, tuple)):
        if len(set(layers_per_block)) != 1:
            raise ValueError("per-block layers_per_block has no single-file layout")
        layers_per_block = layers_per_block[0]
    per = layers_per_block + 1
    up_has_attention = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out: dict[str, Any] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        new = None
        if module in _UNET_TOP:
            new = f"{_UNET_TOP[module]}.{param}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            b, kind, j, tail = int(m[1]), m[2], int(m[3]), m[4]
            idx = 1 + b * per + j
            new = f"input_blocks.{idx}.{_block_tail(kind, tail)}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet_tail(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            b, kind, j, tail = int(m[1]), m[2], int(m[3]), m[4]
            idx = b * per + j
            new = f"output_blocks.{idx}.{_block_tail(kind, tail)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            b = int(m[1])
            slot = 2 if b in up_has_attention else 1
            new = f"output_blocks.{b * per + per - 1}.{slot}.conv.{m[2]}"
        if new is None:
            raise ValueError(f"no single-file name for UNet parameter {key}")
        out["model.diffusion_model." + new] = value
    return out


_VAE_TOP = {
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_norm_out": "decoder.norm_out",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state: Mapping[str, Any], num_blocks: int) -> dict[str, Any]:
    """Rename a diffusers AutoencoderKL state dict to ``first_stage_model.*`` keys."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        new = None
        if module in _VAE_TOP:
            new = f"{_VAE_TOP[module]}.{param}"
        elif module in (
            "encoder.conv_in",
            "encoder.conv_out",
            "decoder.conv_in",
            "decoder.conv_out",
            "quant_conv",
            "post_quant_conv",
        ):
            new = key
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            up = num_blocks - 1 - int(m[1])
            new = f"decoder.up.{up}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            if m[2] in _VAE_ATTN:
                new = f"{m[1]}.mid.attn_1.{_VAE_ATTN[m[2]]}.{m[3]}"
                # The original attention uses 1x1 convolutions where diffusers uses Linear layers.
                if m[2] != "group_norm" and m[3] == "weight" and value.ndim == 2:
                    value = value[:, :, None, None]
        if new is None:
            raise ValueError(f"no single-file name for VAE parameter {key}")
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """An OpenAI-CLIP text encoder under ``prefix`` + ``text_model.*`` (SD1, SDXL's first encoder)."""
    out = {}
    for key, value in state.items():
        if key.endswith("position_ids") or key.startswith("text_projection"):
            continue
        # transformers >= 5.6 saves CLIPTextModel without the ``text_model.`` level; the LDM layout has it.
        name = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + name] = value
    return out


_OPENCLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_OPENCLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}


def openclip_to_ldm(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """A transformers CLIP text encoder in OpenCLIP's layout under ``prefix`` (SD2, SDXL's second encoder)."""
    import torch

    out: dict[str, Any] = {}
    fused: dict[tuple[int, str], dict[str, Any]] = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.t().contiguous()  # OpenCLIP multiplies x @ P
            continue
        name = key.removeprefix("text_model.")
        if name in _OPENCLIP_TOP:
            out[prefix + _OPENCLIP_TOP[name]] = value
            continue
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
        if not m:
            raise ValueError(f"no OpenCLIP name for text-encoder parameter {key}")
        layer, module, param = int(m[1]), m[2], m[3]
        if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            fused.setdefault((layer, param), {})[module[10]] = value
            continue
        if module not in _OPENCLIP_LAYER:
            raise ValueError(f"no OpenCLIP name for text-encoder parameter {key}")
        out[f"{prefix}transformer.resblocks.{layer}.{_OPENCLIP_LAYER[module]}.{param}"] = value
    for (layer, param), parts in fused.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"text-encoder layer {layer} lacks one of q/k/v {param}")
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0
        )
    return out


def openclip_from_ldm(checkpoint: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The inverse of ``openclip_to_ldm``: transformers CLIPTextModelWithProjection keys (with ``text_model.``)."""
    inverse_top = {v: k for k, v in _OPENCLIP_TOP.items()}
    inverse_layer = {v: k for k, v in _OPENCLIP_LAYER.items()}
    out: dict[str, Any] = {}
    for key, value in checkpoint.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name == "text_projection":
            out["text_projection.weight"] = value.t().contiguous()
        elif name in inverse_top:
            out["text_model." + inverse_top[name]] = value
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", name):
            for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                out[f"text_model.encoder.layers.{m[1]}.self_attn.{part}_proj.{m[2]}"] = chunk.contiguous()
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)", name):
            if m[2] in inverse_layer:
                out[f"text_model.encoder.layers.{m[1]}.{inverse_layer[m[2]]}.{m[3]}"] = value
    return out
