"""Every layout we read loads through load_into_pipeline with every module matched and the right output.

The reference is a PEFT LoRA applied in memory; each file is the same LoRA in another layout (written by
save_adapter, by diffusers' own save_lora_weights, by hand for the older/other spellings).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from app.engine.adapters import load_into_pipeline, read_adapter_info, save_adapter
from app.engine.adapters.keys import diffusers_to_sgm, sgm_to_diffusers
from tests.helpers.peft_probes import (
    TE_TARGETS,
    UNET_TARGETS,
    add_random_lora,
    injected_modules,
    load_pipe,
    peft_sd,
    te_probe,
    unet_probe,
)

RANK, ALPHA = 4, 8.0  # scale 2: a power of two, so folding it into lora_up is exact


@pytest.fixture(scope="module")
def sd15_ref(tiny_sd15):
    pipe = load_pipe(tiny_sd15)
    add_random_lora(pipe.unet, UNET_TARGETS, rank=RANK, alpha=ALPHA)
    add_random_lora(pipe.text_encoder, TE_TARGETS, rank=RANK, alpha=ALPHA, seed=5)
    return {
        "unet": peft_sd(pipe.unet),
        "te": peft_sd(pipe.text_encoder),
        "unet_out": unet_probe(pipe),
        "te_out": te_probe(pipe),
        "unet_modules": len(injected_modules(pipe.unet, "default")),
        "te_modules": len(injected_modules(pipe.text_encoder, "default")),
    }


def _fold(sd):
    """lora_B × (alpha / rank), for layouts that store no alpha (their scale is 1)."""
    return {k: (v * (ALPHA / RANK) if ".lora_B." in k else v) for k, v in sd.items()}


def _write_kohya(ref, path, *, with_alpha=True):
    save_adapter(path, unet=ref["unet"], text_encoder=ref["te"], rank=RANK, alpha=ALPHA, family="sd1", title="k")
    if not with_alpha:
        from safetensors.torch import load_file

        from app.engine.adapters.writer import peft_to_kohya

        sd = {}
        for comp, part in (("unet", ref["unet"]), ("text_encoder", ref["te"])):
            for name, (down, up) in peft_to_kohya(_fold(part), comp, sdxl=False).items():
                sd[f"{name}.lora_down.weight"], sd[f"{name}.lora_up.weight"] = down, up
        assert not any(k.endswith(".alpha") for k in sd)
        save_file(sd, str(path))
        load_file(str(path))


def _write_diffusers_save_lora_weights(ref, path):
    from diffusers import StableDiffusionPipeline

    meta = {"r": RANK, "lora_alpha": ALPHA, "target_modules": UNET_TARGETS}
    StableDiffusionPipeline.save_lora_weights(
        str(path.parent / "dl"), unet_lora_layers=ref["unet"], text_encoder_lora_layers=ref["te"],
        unet_lora_adapter_metadata=meta, text_encoder_lora_adapter_metadata={**meta, "target_modules": TE_TARGETS},
    )  # fmt: skip
    (path.parent / "dl" / "pytorch_lora_weights.safetensors").rename(path)


def _write_old_diffusers(ref, path):
    """Pre-PEFT diffusers spelling: ``unet.….processor.to_q_lora.down.weight``, ``….lora.down.weight``,
    ``text_encoder.….lora_linear_layer.down.weight`` — no alphas (scale 1)."""
    sd = {}
    for key, v in _fold(ref["unet"]).items():
        mod, ab = key.rsplit(".lora_", 1)
        part = "down" if ab.startswith("A") else "up"
        for proj, spelled in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out.0", "to_out")):
            if mod.endswith(f".attn1.{proj}") or mod.endswith(f".attn2.{proj}"):
                sd[f"unet.{mod[: -len(proj) - 1]}.processor.{spelled}_lora.{part}.weight"] = v
                break
        else:
            sd[f"unet.{mod}.lora.{part}.weight"] = v
    for key, v in _fold(ref["te"]).items():
        mod, ab = key.rsplit(".lora_", 1)
        sd[f"text_encoder.{mod}.lora_linear_layer.{'down' if ab.startswith('A') else 'up'}.weight"] = v
    save_file(sd, str(path))


def _write_peft(ref, path):
    """Bare PEFT names with diffusers' ``lora_adapter_metadata`` header entry carrying the alpha."""
    sd = {f"base_model.model.{k}": v for k, v in ref["unet"].items()} | dict(ref["te"])
    save_file(sd, str(path), metadata={"lora_adapter_metadata": json.dumps({"r": RANK, "lora_alpha": ALPHA})})


WRITERS = {
    "kohya": (_write_kohya, "kohya"),
    "kohya-no-alpha": (lambda r, p: _write_kohya(r, p, with_alpha=False), "kohya"),
    "diffusers-save_lora_weights": (_write_diffusers_save_lora_weights, "diffusers"),
    "diffusers-old": (_write_old_diffusers, "diffusers"),
    "peft": (_write_peft, "peft"),
}


@pytest.mark.parametrize("layout", list(WRITERS))
def test_layout_round_trip(layout, sd15_ref, tiny_sd15, tmp_path):
    writer, expected_layout = WRITERS[layout]
    path = tmp_path / f"{layout}.safetensors"
    writer(sd15_ref, path)
    info = read_adapter_info(path)
    assert info.layout == expected_layout
    n_unet, n_te = sd15_ref["unet_modules"], sd15_ref["te_modules"]
    assert info.rank == RANK and info.module_count == n_unet + n_te
    assert info.components == {"unet": n_unet, "text_encoder": n_te}

    pipe = load_pipe(tiny_sd15)
    report = load_into_pipeline(pipe, path, "style")
    assert report.matched == n_unet + n_te and report.unmatched == 0 and report.ok
    assert report.components == {"unet": n_unet, "text_encoder": n_te}
    # Exact for every layout: the folded scale is a power of two.
    assert torch.equal(unet_probe(pipe), sd15_ref["unet_out"])
    assert torch.equal(te_probe(pipe), sd15_ref["te_out"])


def test_sgm_names_round_trip_and_agree_with_diffusers(tiny_sdxl, tmp_path):
    targets = UNET_TARGETS + ["conv", "conv_in", "conv_out", "linear_1", "linear_2"]
    ref = load_pipe(tiny_sdxl)
    add_random_lora(ref.unet, targets, rank=RANK, alpha=ALPHA)
    expected = unet_probe(ref)
    ours = save_adapter(tmp_path / "ours.safetensors", unet=peft_sd(ref.unet), rank=RANK, alpha=ALPHA,
                        family="sdxl", title="x")  # fmt: skip
    from safetensors.torch import load_file

    sgm = {}
    for key, v in load_file(str(ours)).items():
        module, suffix = key.split(".", 1)
        sgm_name = diffusers_to_sgm(module)
        assert sgm_to_diffusers(sgm_name) == module  # the mapping is a bijection on real module names
        sgm[f"{sgm_name}.{suffix}"] = v
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in sgm
    assert "lora_unet_input_blocks_3_0_op.lora_down.weight" in sgm  # block 0's downsampler
    assert "lora_unet_output_blocks_2_2_conv.lora_down.weight" in sgm  # up block 0's upsampler
    assert "lora_unet_label_emb_0_0.lora_down.weight" in sgm and "lora_unet_out_2.lora_down.weight" in sgm
    path = tmp_path / "sgm.safetensors"
    save_file(sgm, str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    assert read_adapter_info(path).layout == "kohya-sgm"

    pipe = load_pipe(tiny_sdxl)
    report = load_into_pipeline(pipe, path, "sgm")
    assert report.unmatched == 0 and report.matched == len(injected_modules(ref.unet, "default"))
    assert torch.equal(unet_probe(pipe), expected)

    # Independent check of our SGM mapping: diffusers' own SGM conversion, on the attention/resnet part.
    attn_res = {k: v for k, v in sgm.items() if "transformer_blocks" in k or "_layers_" in k}
    save_file(attn_res, str(tmp_path / "sgm_part.safetensors"))
    ours_part = load_pipe(tiny_sdxl)
    load_into_pipeline(ours_part, tmp_path / "sgm_part.safetensors", "a")
    theirs = load_pipe(tiny_sdxl)
    theirs.load_lora_weights(str(tmp_path / "sgm_part.safetensors"), adapter_name="a")
    assert injected_modules(theirs.unet, "a") == injected_modules(ours_part.unet, "a")
    assert torch.equal(unet_probe(theirs), unet_probe(ours_part))
