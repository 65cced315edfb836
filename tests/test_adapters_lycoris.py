"""LyCORIS LoHa / LoKr / DoRA files written by the ``lycoris-lora`` package itself apply here exactly as
lycoris merges them (fp32 tolerance), through the shelf's own loader."""

from __future__ import annotations

import pytest
import torch

lycoris_kohya = pytest.importorskip("lycoris.kohya", reason="lycoris-lora is a test dependency (pip install -e .[dev])")

from app.engine.adapters import load_into_pipeline, read_adapter_info  # noqa: E402
from app.engine.adapters.loader import read_lora_modules  # noqa: E402


def _lycoris_file(path, *, algo: str, preset: str, dim=4, alpha=4, seed=0, **kwargs):
    """A file saved by lycoris' kohya network on the tiny SD1.5 model, with every factor random (lycoris
    starts one factor at zero), and lycoris' own merged weight for each module it patched."""
    from app.engine.models.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd15", seed=0)
    net = lycoris_kohya.create_network(
        1.0,
        dim,
        alpha,
        None,
        pipe.text_encoder,
        pipe.unet,
        preset=preset,
        algo=algo,
        conv_dim=str(dim),
        conv_alpha=str(alpha),
        **kwargs,
    )
    net.apply_to(pipe.text_encoder, pipe.unet, True, True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("dora_scale"):
                p.mul_(1 + 0.2 * torch.rand(p.shape, generator=gen))  # a magnitude that really differs from ‖W‖
            else:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    net.save_weights(str(path), torch.float32, {"ss_network_module": "lycoris.kohya"})
    names = {
        id(m): (comp, n)
        for comp, model in (("unet", pipe.unet), ("text_encoder", pipe.text_encoder))
        for n, m in model.named_modules()
    }
    merged = {}
    with torch.no_grad():
        for m in net.unet_loras + net.text_encoder_loras:
            org = m.org_module[0]
            merged[names[id(org)]] = m.get_merged_weight(multiplier=1, shape=org.weight.shape)[0].float()
    return path, merged


def _ours(path, name="x"):
    from app.engine.models.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd15", seed=0)
    report = load_into_pipeline(pipe, path, name)
    weights, bases = {}, {}
    with torch.no_grad():
        for comp in ("unet", "text_encoder"):
            model = getattr(pipe, comp)
            for n, layer in model.named_modules():
                if hasattr(layer, "lora_A") and name in layer.lora_A:
                    base = layer.get_base_layer().weight.float()
                    weights[(comp, n)] = base + layer.get_delta_weight(name).float()
                    bases[(comp, n)] = base
    return report, weights, bases


CASES = {
    "loha-linear": dict(algo="loha", preset="attn-mlp"),
    "loha-conv-tucker": dict(algo="loha", preset="unet-convblock-only", use_tucker="True"),
    "loha-conv": dict(algo="loha", preset="unet-convblock-only"),  # flat down factor [r, in·3·3]
    "lokr-linear-factor4": dict(algo="lokr", preset="attn-mlp", factor="4"),
    "lokr-conv-tucker-full-matrix": dict(algo="lokr", preset="unet-convblock-only", factor="4", use_tucker="True"),
    "lokr-decompose-both": dict(algo="lokr", preset="attn-mlp", factor="8", decompose_both="True"),
    "dora-linear": dict(algo="lora", preset="attn-mlp", dora_wd="True", dim=4, alpha=2),
    "dora-conv": dict(algo="lora", preset="unet-convblock-only", dora_wd="True", dim=4, alpha=2),
}


@pytest.mark.parametrize("case", CASES)
def test_patched_weights_equal_lycoris_merge(case, tmp_path):
    path, reference = _lycoris_file(tmp_path / f"{case}.safetensors", **CASES[case])
    info = read_adapter_info(path)
    assert info.module_count == len(reference) and info.family == "unknown"  # tiny model: no family to claim
    report, ours, bases = _ours(path)
    assert report.ok and report.matched == len(reference)
    assert set(ours) == set(reference)
    worst = max(float((ours[k] - reference[k]).abs().max() / reference[k].abs().max()) for k in reference)
    assert worst < 1e-5, f"largest relative difference {worst:.2e}"
    assert all(float((ours[k] - bases[k]).abs().max()) > 1e-3 for k in reference)  # every module really patches


def test_formats_are_named_in_info_and_the_conversion_is_low_rank_where_exact(tmp_path):
    path, _ = _lycoris_file(tmp_path / "loha.safetensors", algo="loha", preset="attn-mlp")
    info = read_adapter_info(path)
    assert info.algorithm == "loha" and info.rank == 4
    _, modules = read_lora_modules(path)
    q = next(m for n, m in modules.items() if n.endswith("attn1_to_q"))
    assert q.rank == 16 and q.algorithm == "loha"  # r1·r2 = 4·4: the Khatri-Rao product, not a full delta


def test_peft_dora_file_applies_as_peft_merges_it(tmp_path):
    """diffusers/PEFT DoRA (``lora_magnitude_vector``): the same weights PEFT's own merge gives."""
    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import save_file

    from app.engine.models.tiny import build_tiny_pipeline

    unet = build_tiny_pipeline("sd15", seed=0).unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, use_dora=True, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "lora_magnitude_vector" in name:
                p.mul_(1 + 0.2 * torch.rand(p.shape, generator=gen))
    state = get_peft_model_state_dict(unet)
    assert any("lora_magnitude_vector" in k for k in state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "dora.safetensors"))
    assert read_adapter_info(tmp_path / "dora.safetensors").algorithm == "dora"
    report, ours, _ = _ours(tmp_path / "dora.safetensors")
    reference = {}
    with torch.no_grad():
        for n, layer in unet.named_modules():
            if hasattr(layer, "lora_A") and "default" in layer.lora_A:
                layer.merge(adapter_names=["default"])
                reference[("unet", n)] = layer.get_base_layer().weight.float().clone()
    assert report.matched == len(reference) > 0 and set(ours) == set(reference)
    worst = max(float((ours[k] - reference[k]).abs().max() / reference[k].abs().max()) for k in reference)
    assert worst < 1e-5, f"largest relative difference {worst:.2e}"


def test_loha_and_dora_on_the_shelf_weight_toggle_and_bake(tmp_path, tiny_sd15):
    import numpy as np

    from app.engine.errors import AdapterError
    from app.engine.generate.generator import Generator
    from app.engine.shelf.bake import bake
    from app.engine.shelf.stack import StackEntry

    loha, _ = _lycoris_file(tmp_path / "loha.safetensors", algo="loha", preset="attn-mlp")
    dora, _ = _lycoris_file(tmp_path / "dora.safetensors", algo="lora", preset="attn-mlp", dora_wd="True", seed=1)
    gen = Generator(str(tiny_sd15), max_loaded_adapters=4)

    def render(stack):
        gen.apply_stack(stack)
        out = gen.pipe(
            "a lighthouse",
            num_inference_steps=2,
            width=64,
            height=64,
            output_type="np",
            generator=torch.Generator().manual_seed(5),
        )
        return out.images[0]

    base = render([])
    full = render([StackEntry(path=str(loha), weight=1.0)])
    assert np.abs(full - base).max() > 1e-3
    assert np.array_equal(render([StackEntry(path=str(loha), weight=0.0)]), base)
    half = render([StackEntry(path=str(loha), weight=0.5)])
    assert not np.array_equal(half, full) and not np.array_equal(half, base)
    both = render([StackEntry(path=str(loha), weight=1.0), StackEntry(path=str(dora), weight=1.0)])
    assert np.abs(both - full).max() > 1e-3
    assert np.array_equal(
        render([StackEntry(path=str(loha), weight=1.0), StackEntry(path=str(dora), weight=1.0, enabled=False)]), full
    )

    baked = bake([StackEntry(path=str(loha), weight=1.0)], tmp_path / "baked.safetensors")  # concat: exact
    np.testing.assert_allclose(render([StackEntry(path=str(baked), weight=1.0)]), full, atol=2e-5)
    with pytest.raises(AdapterError, match="DoRA adapter, whose effect depends on the base"):
        bake([StackEntry(path=str(dora), weight=1.0)], tmp_path / "no.safetensors")


def test_non_tucker_conv_loha_bakes_to_kohya_locon_layout_equal_to_its_re_ranked_delta(tmp_path):
    """A bake merges the LoHa's full delta and re-ranks it by SVD: on a 3×3 conv the file must hold kohya's LoCon
    layout (lora_down [r, in, 3, 3], lora_up [out, r, 1, 1]) and the best rank-r delta, read alike by our loader
    and by LyCORIS' own code."""
    from safetensors.torch import load_file

    from app.engine.models.tiny import build_tiny_pipeline
    from app.engine.shelf.bake import bake
    from app.engine.shelf.stack import StackEntry

    path, merged = _lycoris_file(tmp_path / "loha-conv.safetensors", algo="loha", preset="unet-convblock-only")
    raw = load_file(str(path))
    assert raw["lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_b"].dim() == 2  # the flat factor under test
    _report, _ours_loha, bases = _ours(path)
    rank = 3
    baked = bake([StackEntry(path=str(path), weight=1.0)], tmp_path / "baked.safetensors", rank=rank)
    sd = load_file(str(baked))
    convs = [k for k, base in bases.items() if base.dim() == 4 and base.shape[-1] == 3]
    assert len(convs) >= 8
    report, ours, _ = _ours(baked, "baked")
    assert report.ok and set(ours) == set(merged)

    # LyCORIS' own loader on the baked file (kohya LoCon keys → its LoConModule), merged weights per layer.
    pipe = build_tiny_pipeline("sd15", seed=0)
    net, _sd = lycoris_kohya.create_network_from_weights(
        1.0, str(baked), None, pipe.text_encoder, pipe.unet, weights_sd=sd
    )
    names = {id(m): ("unet", n) for n, m in pipe.unet.named_modules()}
    theirs = {}
    with torch.no_grad():
        for m in net.unet_loras:
            org = m.org_module[0]
            theirs[names[id(org)]] = m.get_merged_weight(multiplier=1, shape=org.weight.shape)[0].float()
    assert set(theirs) == set(merged)

    for comp, layer in convs:
        key = "lora_unet_" + layer.replace(".", "_")
        down, up = sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"]
        out, fin = bases[(comp, layer)].shape[:2]
        assert tuple(down.shape) == (rank, fin, 3, 3) and tuple(up.shape) == (out, rank, 1, 1), key
        delta = (merged[(comp, layer)] - bases[(comp, layer)]).reshape(out, -1).double()
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        best = ((u[:, :rank] * s[:rank]) @ vh[:rank]).reshape(out, fin, 3, 3).float()  # Eckart–Young
        scale = float(best.abs().max())
        for got in (ours[(comp, layer)], theirs[(comp, layer)]):
            assert float(((got - bases[(comp, layer)]) - best).abs().max()) < 1e-4 * scale, key
    assert float((ours[convs[0]] - theirs[convs[0]]).abs().max()) < 1e-5


@pytest.mark.parametrize("algo", ["loha", "lokr"])
def test_alpha_below_rank_scales_as_lycoris_trains(algo, tmp_path):
    """With alpha ≠ dim, lycoris 4.1.3's get_merged_weight applies alpha/dim twice (its LoHa/LoKr get_weight
    already scales, get_diff_weight scales again), while its forward pass, which trained the file, applies it
    once, as ComfyUI and AUTOMATIC1111 do: so we compare with lycoris' forward pass here."""
    import torch.nn.functional as F

    from app.engine.models.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd15", seed=0)
    net = lycoris_kohya.create_network(
        1.0, 4, 2, None, pipe.text_encoder, pipe.unet, preset="attn-mlp", algo=algo, factor="4"
    )
    net.apply_to(pipe.text_encoder, pipe.unet, True, True)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    path = tmp_path / f"{algo}-alpha2.safetensors"
    net.save_weights(str(path), torch.float32, {})
    names = {id(m): ("unet", n) for n, m in pipe.unet.named_modules()}
    names.update({id(m): ("text_encoder", n) for n, m in pipe.text_encoder.named_modules()})
    _report, ours, bases = _ours(path)
    checked = 0
    with torch.no_grad():
        for m in net.unet_loras + net.text_encoder_loras:
            org = m.org_module[0]
            if not isinstance(org, torch.nn.Linear):
                continue
            x = torch.randn(3, org.in_features, generator=gen)
            theirs = m.forward(x) - F.linear(x, org.weight, org.bias)
            key = names[id(org)]
            mine = F.linear(x, ours[key] - bases[key])
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
            checked += 1
    assert checked > 20


def test_full_diff_with_bias_deltas_applies_as_lycoris_full(tmp_path):
    """lycoris' "full" algorithm (``diff`` + ``diff_b``): the patched weight and bias equal the weight and bias its
    forward pass uses."""
    from app.engine.models.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd15", seed=0)
    net = lycoris_kohya.create_network(1.0, 4, 4, None, pipe.text_encoder, pipe.unet, preset="attn-mlp", algo="full")
    net.apply_to(pipe.text_encoder, pipe.unet, True, True)
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    path = tmp_path / "full.safetensors"
    net.save_weights(str(path), torch.float32, {})
    names = {id(m): ("unet", n) for n, m in pipe.unet.named_modules()}
    names.update({id(m): ("text_encoder", n) for n, m in pipe.text_encoder.named_modules()})

    ours = build_tiny_pipeline("sd15", seed=0)
    report = load_into_pipeline(ours, path, "full")
    assert report.ok and read_adapter_info(path).algorithm == "full"
    with_bias = 0
    with torch.no_grad():
        for m in net.unet_loras + net.text_encoder_loras:
            comp, dotted = names[id(m.org_module[0])]
            layer = getattr(ours, comp).get_submodule(dotted)
            weight = layer.get_base_layer().weight + layer.get_delta_weight("full")
            torch.testing.assert_close(weight, m.weight, rtol=0, atol=2e-6)
            if m.bias is not None:
                bias = layer.get_base_layer().bias + layer.lora_B["full"].bias * layer.scaling["full"]
                torch.testing.assert_close(bias, m.bias, rtol=0, atol=2e-6)
                with_bias += 1
    assert with_bias > 10
