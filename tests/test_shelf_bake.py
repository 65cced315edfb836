"""Bake: a stack of weighted adapters in diffusers (set_adapters) == the baked single adapter."""

from __future__ import annotations

import json

import pytest
import torch

from app.engine.adapters import read_adapter_info, read_lora_modules, save_adapter
from app.engine.errors import AdapterError, UserError
from app.engine.shelf.bake import bake
from app.engine.shelf.stack import Stack, StackEntry
from tests.helpers.peft_probes import (
    TE_TARGETS,
    add_random_lora,
    load_pipe,
    peft_sd,
    te_probe,
    unet_probe,
)

WA, WB = 0.7, -0.4


@pytest.fixture(scope="module")
def sources(tiny_sd15, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bake")
    pipe = load_pipe(tiny_sd15)
    add_random_lora(pipe.unet, ["to_q", "to_k", "to_v", "to_out.0"], rank=4, alpha=8.0, seed=11, adapter_name="a")
    add_random_lora(pipe.unet, ["to_q", "to_v", "proj_in", "conv1"], rank=2, alpha=1.0, seed=12, adapter_name="b")
    add_random_lora(pipe.text_encoder, TE_TARGETS, rank=4, alpha=4.0, seed=13, adapter_name="a")
    a = save_adapter(folder / "a.safetensors", unet=peft_sd(pipe.unet, "a"),
                     text_encoder=peft_sd(pipe.text_encoder, "a"), rank=4, alpha=8.0, text_encoder_alpha=4.0,
                     family="sd1", title="Alpha", trigger_phrase="aaa")  # fmt: skip
    b = save_adapter(folder / "b.safetensors", unet=peft_sd(pipe.unet, "b"), rank=2, alpha=1.0, family="sd1",
                     title="Beta", trigger_phrase="bbb")  # fmt: skip
    # The stack as diffusers applies it: both adapters loaded, weights through set_adapters.
    stacked = load_pipe(tiny_sd15)
    stacked.load_lora_weights(str(a), adapter_name="a")
    stacked.load_lora_weights(str(b), adapter_name="b")
    stacked.set_adapters(["a", "b"], [WA, WB])
    base = load_pipe(tiny_sd15)
    return {"a": a, "b": b, "folder": folder, "stack_unet": unet_probe(stacked), "stack_te": te_probe(stacked),
            "base_unet": unet_probe(base), "base_te": te_probe(base)}  # fmt: skip


def _stack(src, *extra):
    return Stack([StackEntry(str(src["a"]), weight=WA), StackEntry(str(src["b"]), weight=WB), *extra])


def _rel(x, ref, base):
    return float((x - ref).abs().max() / (ref - base).abs().max())


def test_concat_bake_equals_the_stack(sources, tiny_sd15):
    disabled = StackEntry(str(sources["a"]), enabled=False, weight=5.0)  # must not count
    out = bake(_stack(sources, disabled), sources["folder"] / "house.safetensors")
    info = read_adapter_info(out)
    assert info.family == "sd1" and info.layout == "kohya"
    assert sorted(info.ranks) == [2, 4, 6]  # ranks add where both adapters touch a layer
    assert info.trigger_phrase == "aaa, bbb"
    assert info.metadata["modelspec.merged_from"] == "Alpha, Beta"
    recorded = json.loads(info.metadata["styleshelf.bake"])
    assert [s["weight"] for s in recorded["sources"]] == [WA, WB]
    assert recorded["sources"][0]["tensor_sha256"] == read_adapter_info(sources["a"]).tensor_sha256

    baked = load_pipe(tiny_sd15)
    baked.load_lora_weights(str(out), adapter_name="house")  # plain diffusers, as any user would
    assert _rel(unet_probe(baked), sources["stack_unet"], sources["base_unet"]) < 1e-5
    assert _rel(te_probe(baked), sources["stack_te"], sources["base_te"]) < 1e-5


def test_svd_bake_is_the_best_low_rank_approximation(sources, tiny_sd15):
    full = bake(_stack(sources), sources["folder"] / "svd6.safetensors", mode="svd", rank=6)
    low = bake(_stack(sources), sources["folder"] / "svd3.safetensors", mode="svd", rank=3)
    assert read_adapter_info(low).ranks == [2, 3]  # modules with total rank ≤ 3 stay exact (rank 2)

    # Per layer: the baked ΔW is the Eckart–Young optimum, its error is exactly the dropped singular values.
    _, mods_a = read_lora_modules(sources["a"])
    _, mods_b = read_lora_modules(sources["b"])
    _, mods_low = read_lora_modules(low)
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    target = (
        WA * mods_a[name].scale * mods_a[name].up @ mods_a[name].down
        + WB * mods_b[name].scale * mods_b[name].up @ mods_b[name].down
    )
    got = mods_low[name].scale * mods_low[name].up @ mods_low[name].down
    sv = torch.linalg.svdvals(target.double())
    assert float((target - got).norm()) == pytest.approx(float(sv[3:].norm()), rel=1e-3)
    assert float(sv[3:].norm()) > 0.01 * float(sv.norm())  # the truncation really dropped something

    pipe_full, pipe_low = load_pipe(tiny_sd15), load_pipe(tiny_sd15)
    pipe_full.load_lora_weights(str(full), adapter_name="x")
    pipe_low.load_lora_weights(str(low), adapter_name="x")
    assert _rel(unet_probe(pipe_full), sources["stack_unet"], sources["base_unet"]) < 1e-4  # no truncation
    err_low = _rel(unet_probe(pipe_low), sources["stack_unet"], sources["base_unet"])
    assert 0 < err_low < 0.5


def test_separate_text_encoder_weight_and_refusals(sources, tmp_path, tiny_sdxl):
    out = bake(Stack([StackEntry(str(sources["a"]), weight=1.0, text_encoder_weight=0.0)]), tmp_path / "u.safetensors")
    n_unet = read_adapter_info(sources["a"]).components["unet"]
    assert read_adapter_info(out).components == {"unet": n_unet}  # text-encoder part weighted 0 → left out
    with pytest.raises(UserError, match="Nothing to bake"):
        bake(Stack([StackEntry(str(sources["a"]), enabled=False)]), tmp_path / "n.safetensors")
    with pytest.raises(UserError, match="one of the sources"):
        bake(_stack(sources), sources["a"])
    xl = save_adapter(tmp_path / "xl.safetensors",
                      unet={"down_blocks.1.attentions.0.proj_in.lora_A.weight": torch.ones(2, 64),
                            "down_blocks.1.attentions.0.proj_in.lora_B.weight": torch.ones(64, 2)}, rank=2, alpha=2,
                      family="sdxl", title="xl")  # fmt: skip
    with pytest.raises(AdapterError, match="different base models"):
        bake(Stack([StackEntry(str(sources["a"])), StackEntry(str(xl))]), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
