"""Stacks merged into the weights for a run (StackRunner / WeightPatcher) on the tiny SD1 model: the
originals come back bit for bit, patched images match side-path images, only changed layers are rewritten."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.generate import GenerateConfig, Generator
from app.engine.generate.identity import adapter_identity
from app.engine.generate.stack_mode import StackCostModel
from app.engine.generate.stack_runner import DEFAULT_MODE
from app.engine.shelf.stack import StackEntry
from tests.helpers.loras import make_lora


def run_shape(gen):
    """(UNet calls, UNet input elements) of a 3-step 64 px run with CFG, as ``Generator.generate`` passes it."""
    return 3, 2 * (64 // gen.pipe.vae_scale_factor) ** 2


@pytest.fixture(scope="module")
def partial_lora(tiny_sd15, tmp_path_factory):
    """An adapter on to_k and the ResNet 3×3 convs only: it shares some layers with the others, not all."""
    folder = tmp_path_factory.mktemp("partial")
    return make_lora(tiny_sd15, folder / "style-d.safetensors", family="sd1", seed=4, targets=["to_k", "conv1"])


@pytest.fixture(scope="module")
def gen(tiny_sd15):
    return Generator(tiny_sd15, max_loaded_adapters=8)


def E(path, **kw):
    return StackEntry(path=str(path), **kw)


def render(gen, stack, mode, *, seed=7):
    """Apply ``stack`` as a generation run does, in ``mode``, and sample at float precision."""
    import torch

    gen.stacks.mode = mode
    try:
        gen.apply_stack(stack, run=run_shape(gen))
    finally:
        gen.stacks.mode = DEFAULT_MODE
    out = gen.pipe("a lighthouse at dusk", num_inference_steps=3, width=64, height=64,
                   generator=torch.Generator().manual_seed(seed), output_type="np")  # fmt: skip
    return out.images[0]


def weights(gen):
    """Every UNet and text-encoder base weight (PEFT's own LoRA factors left out), cloned."""
    return {
        f"{comp}.{name.replace('.base_layer', '')}": p.detach().clone()  # wrapped or not, the same tensor
        for comp in ("unet", "text_encoder")
        for name, p in getattr(gen.pipe, comp).named_parameters()
        if ".lora_" not in name
    }


def assert_same_weights(gen, reference):
    now = weights(gen)
    assert now.keys() == reference.keys()
    changed = [k for k in reference if not torch_equal(now[k], reference[k])]
    assert changed == [], f"not restored bit for bit: {changed[:5]}"


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a, b))


def test_empty_stack_and_weight_zero_are_the_base_bit_for_bit_after_patched_runs(gen, sd15_loras, partial_lora):
    a, b, c = (sd15_loras[k] for k in "abc")
    base = render(gen, [], "side")
    original = weights(gen)
    stacks = [[E(a, weight=0.8), E(b, weight=-0.5)], [E(c, text_encoder_weight=0.7), E(partial_lora)], [E(a)]]
    for _ in range(2):
        for stack in stacks:
            assert not np.array_equal(render(gen, stack, "patch"), base)
            assert gen.stacks.last.mode == "patch" and gen.stacks.patcher.patched_layers > 0
    assert np.array_equal(render(gen, [], "patch"), base)
    assert gen.stacks.patcher.patched_layers == 0 and gen.stacks.patcher.original_bytes == 0
    assert_same_weights(gen, original)
    render(gen, [E(a), E(c)], "patch")
    assert np.array_equal(render(gen, [E(a, weight=0.0), E(c, enabled=False)], "patch"), base)
    render(gen, [E(b)], "patch")
    assert np.array_equal(render(gen, [], "side"), base), "going to the side path restores the weights"
    assert_same_weights(gen, original)


def test_patched_image_matches_side_path_and_repeats_bit_for_bit(gen, sd15_loras, partial_lora):
    a, b, c = (sd15_loras[k] for k in "abc")
    one = [E(a, weight=0.8), E(b, weight=-0.5), E(c, weight=0.6, text_encoder_weight=0.4), E(partial_lora, weight=0.7)]
    two = [E(b, weight=0.3), E(partial_lora, weight=-1.0)]
    base = render(gen, [], "side")
    side_one, side_two = render(gen, one, "side"), render(gen, two, "side")
    patched_one, patched_two = render(gen, one, "patch"), render(gen, two, "patch")
    assert np.abs(side_one - base).max() > 1e-2  # the stack really changes the image
    assert np.abs(patched_one - side_one).max() < 1e-4
    assert np.abs(patched_two - side_two).max() < 1e-4
    for i in range(6):  # alternating stacks and modes: each image comes back bit for bit
        assert np.array_equal(render(gen, one, "patch"), patched_one)
        assert np.array_equal(render(gen, two, "side" if i % 2 else "patch"), side_two if i % 2 else patched_two)


def test_reweight_or_toggle_rewrites_only_the_layers_of_that_style(gen, sd15_loras, partial_lora):
    a = sd15_loras["a"]
    d_layers = _layer_count(gen, partial_lora)
    a_layers = _layer_count(gen, a)
    shared = _layer_count(gen, a, partial_lora)
    assert 0 < shared < min(a_layers, d_layers)  # the test needs layers of a alone, of d alone and of both
    render(gen, [], "patch")

    render(gen, [E(a), E(partial_lora)], "patch")
    stats = gen.stacks.last.stats
    assert (stats.patched, stats.kept, stats.restored) == (a_layers + d_layers - shared, 0, 0)
    render(gen, [E(a), E(partial_lora, weight=0.4)], "patch")  # reweight d
    stats = gen.stacks.last.stats
    assert (stats.patched, stats.kept, stats.restored) == (d_layers, a_layers - shared, 0)
    render(gen, [E(a), E(partial_lora, enabled=False)], "patch")  # toggle d off
    stats = gen.stacks.last.stats
    assert (stats.patched, stats.restored) == (shared, d_layers - shared)
    render(gen, [E(a), E(partial_lora, enabled=False)], "patch")  # the same stack again: nothing to do
    assert gen.stacks.last.stats.patched == gen.stacks.last.stats.restored == 0
    # Originals are kept once per patched layer, however many adapters share it.
    render(gen, [E(a), E(sd15_loras["b"]), E(partial_lora)], "patch")
    patched = list(gen.stacks.patcher._originals)
    assert len(patched) == a_layers + d_layers - shared
    assert gen.stacks.patcher.original_bytes == sum(layer.weight.numel() * 4 for layer in patched)


def _layer_count(gen, *paths):
    """Base layers that every one of ``paths`` adapts (loading them if needed)."""
    gen.apply_stack([E(p) for p in paths])
    names = [adapter_identity(p).adapter_name for p in paths]
    plan = gen.stacks.plan([_active(n) for n in names])
    return sum(1 for contributions in plan.layers.values() if {c.adapter for c in contributions} == set(names))


def _active(name, weight=1.0):
    from app.engine.generate.adapter_cache import ActiveAdapter

    return ActiveAdapter(name, weight, weight)


def test_generate_patches_by_default_and_evicted_adapters_still_restore(tiny_sd15, sd15_loras, tmp_path):
    gen = Generator(tiny_sd15, max_loaded_adapters=1)
    original = weights(gen)
    cfg = dict(prompt="a lighthouse", steps=2, width=64, height=64, seed=3, out_dir=str(tmp_path), preview_every=0)
    gen.generate(GenerateConfig(stack=[E(sd15_loras["a"])], file_stem="a", **cfg))
    assert gen.stacks.last.mode == "patch" and gen.stacks.patcher.patched_layers > 0
    # b evicts a (capacity 1) while a's delta is still in the weights: the originals still come back.
    gen.generate(GenerateConfig(stack=[E(sd15_loras["b"])], file_stem="b", **cfg))
    assert gen.adapters.evictions == 1
    gen.generate(GenerateConfig(stack=[], file_stem="none", **cfg))
    assert_same_weights(gen, original)
    gen.swap_base(tiny_sd15)  # a new base: the old one's weights are restored first
    gen.stacks.close()


def test_auto_mode_weighs_measured_patch_cost_against_measured_side_cost():
    costs = StackCostModel()
    # Nothing measured yet: patch, as ComfyUI does.
    assert costs.choose(size=128, calls=20, side_units=1000, patch_work=1e6) == "patch"
    costs.observe_patch(work=1e6, seconds=0.4)  # 0.4 s to patch this stack
    costs.observe_call(size=128, side_units=0, seconds=1.0)  # a plain UNet call: 1 s
    # No side path measured yet: assumed 5 % of a call. 20 calls → 1 s > 0.4 s: patch; a 2-step preview: side.
    assert costs.choose(size=128, calls=20, side_units=1000, patch_work=1e6) == "patch"
    assert costs.choose(size=128, calls=2, side_units=1000, patch_work=1e6) == "side"
    # The side path measured at 3× a plain call (small models): even a 1-call preview is patched.
    costs.observe_call(size=128, side_units=1000, seconds=3.0)
    assert costs.choose(size=128, calls=1, side_units=1000, patch_work=1e6) == "patch"
    # Another size is estimated from the nearest measured one; weights already patched cost nothing.
    assert costs.estimate_side_seconds(size=256, side_units=1000, calls=1) == pytest.approx(4.0)
    assert costs.choose(size=128, calls=1, side_units=10**9, patch_work=0) == "patch"


def test_auto_mode_uses_this_machines_measurements(gen, sd15_loras):
    stack = [E(sd15_loras["a"]), E(sd15_loras["b"])]
    render(gen, [], "side")
    render(gen, stack, "side")  # both kinds of UNet call have now been timed at this size
    costs = gen.stacks.costs
    size = run_shape(gen)[1]
    assert size in costs.plain_call and size in costs.side_per_unit
    render(gen, stack, "auto")
    costs.patch_seconds_per_work = 1.0  # pretend patching were ruinously slow: the run stays on the side path
    render(gen, [E(sd15_loras["a"], weight=0.3)], "auto")
    assert gen.stacks.last.mode == "side" and gen.stacks.patcher.patched_layers == 0
    costs.patch_seconds_per_work = 0.0
    render(gen, [E(sd15_loras["a"], weight=0.3)], "auto")
    assert gen.stacks.last.mode == "patch"


# ------------------------------------------------------------------------------------------ one delta per layer
def _tiny_net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Conv2d(5, 4, 3, padding=1))


@pytest.mark.parametrize("kind", ["lora", "loha", "lokr", "dora"])
def test_every_peft_format_patches_to_what_its_side_path_computes(kind):
    """LoRA gives low-rank factors, LoHa/LoKr a dense delta; DoRA (not a plain addition) stays on the side path."""
    import torch
    from peft import LoHaConfig, LoKrConfig, LoraConfig, inject_adapter_in_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    from app.engine.generate.weight_patch import Contribution, WeightPatcher, peft_layer_delta

    targets = ["0", "1"]
    config = {
        "lora": lambda: LoraConfig(r=2, lora_alpha=3, target_modules=targets),
        "loha": lambda: LoHaConfig(r=2, alpha=3, target_modules=targets),
        "lokr": lambda: LoKrConfig(r=2, alpha=3, target_modules=targets),
        "dora": lambda: LoraConfig(r=2, lora_alpha=3, target_modules=targets, use_dora=True),
    }[kind]()
    net = inject_adapter_in_model(config, _tiny_net(), adapter_name="s")
    with torch.no_grad():
        for name, p in net.named_parameters():
            if any(k in name for k in ("lora_B", "hada_w2_a", "lokr_w2", "lokr_w1")):
                p.copy_(torch.randn(p.shape) * 0.3)  # PEFT starts these at zero: nothing to compare
    layers = [m for m in net.modules() if isinstance(m, BaseTunerLayer)]
    deltas = [peft_layer_delta(layer, "s") for layer in layers]
    if kind == "dora":
        assert deltas == [None, None]
        return
    assert all(d is not None for d in deltas)
    assert (deltas[0].low_rank() is not None) == (kind == "lora")
    strength = 0.7
    for layer in layers:
        layer.set_scale("s", strength)
    x = torch.randn(2, 3, 3, 6)
    with torch.no_grad():
        side = net[1](net[0](x).permute(0, 3, 1, 2))
        for layer in layers:
            layer.enable_adapters(False)  # the side path off, as the runner does
        patcher = WeightPatcher()
        stats = patcher.sync(
            {layer.get_base_layer(): [Contribution("s", strength, d)] for layer, d in zip(layers, deltas)}
        )
        patched = net[1](net[0](x).permute(0, 3, 1, 2))
        assert stats.patched == 2
        assert torch.allclose(patched, side, atol=1e-5), float((patched - side).abs().max())
        patcher.restore_all()
        fresh = _tiny_net()  # the same seeded base weights
        assert torch.equal(net[1](net[0](x).permute(0, 3, 1, 2)), fresh[1](fresh[0](x).permute(0, 3, 1, 2)))


@pytest.mark.parametrize(("dtype", "offload"), [("float32", "cpu"), ("bfloat16", None), ("float16", "cpu")])
def test_half_precision_and_offloaded_originals_restore_bit_for_bit(dtype, offload):
    """A GPU model keeps its originals in RAM (offload) and half-precision weights merge in float32."""
    import torch

    from app.engine.generate.weight_patch import Contribution, LowRankDelta, WeightPatcher

    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8).to(getattr(torch, dtype))
    original = layer.weight.detach().clone()
    up, down = torch.randn(8, 4), torch.randn(4, 16)
    delta = LowRankDelta(up=up, down=down, scale=0.5, weight_shape=(8, 16))
    patcher = WeightPatcher(offload=offload)
    patcher.sync({layer: [Contribution("s", 0.8, delta)]})
    want = original.float() + 0.4 * up @ down
    assert layer.weight.dtype == original.dtype
    assert torch.allclose(layer.weight.float(), want, atol=1e-5 if dtype == "float32" else 0.1, rtol=1e-2)
    once = layer.weight.detach().clone()
    patcher.sync({layer: [Contribution("s", -0.3, delta)]})  # reweight: starts again from the original
    patcher.sync({layer: [Contribution("s", 0.8, delta)]})
    assert torch.equal(layer.weight.data, once)
    assert patcher.original_bytes == original.numel() * original.element_size()
    patcher.restore_all()
    assert torch.equal(layer.weight.data, original) and patcher.original_bytes == 0


# ------------------------------------------------------------------------------------------ toggles prepared ahead
def prepare(gen, stack):
    """A toggle in the UI: returns at once; then wait for the background re-patch (a click later)."""
    assert gen.prepare_stack(stack)
    assert gen.stacks.wait_prepared(timeout=60)


def base_weights(gen):
    """base layer -> (its tensor's storage address, a copy of its values) for every layer a PEFT tuner wraps."""
    return {
        layer.get_base_layer(): (
            layer.get_base_layer().weight.data_ptr(),
            layer.get_base_layer().weight.detach().clone(),
        )
        for layers in gen.adapters.tuner_layers().values()
        for layer in layers
    }


def test_prepared_toggles_give_the_bits_of_a_patch_from_scratch_and_restore_the_base(gen, sd15_loras, partial_lora):
    a, b, c = (sd15_loras[k] for k in "abc")
    gen.apply_stack([E(a), E(b), E(c), E(partial_lora)])  # a toggle prepares only adapters already loaded
    base = render(gen, [], "side")
    original = weights(gen)
    sequence = [
        [E(a, weight=0.8), E(b, weight=-0.5)],
        [E(a, weight=0.8), E(b, weight=-0.5), E(partial_lora, weight=0.7)],  # toggle d on
        [E(a, weight=0.8), E(b, weight=0.2), E(partial_lora, weight=0.7)],  # reweight b
        [E(a, weight=0.8), E(b, enabled=False), E(partial_lora, weight=0.7)],  # toggle b off
        [E(c, text_encoder_weight=0.4), E(a, weight=0.8), E(partial_lora, weight=0.7)],
    ]
    for previous, stack in zip([[], *sequence], sequence):  # 5 toggles/reweights, 3 ways each
        prepare(gen, stack)
        prepared = render(gen, stack, "patch")
        stats = gen.stacks.last.stats
        assert stats.patched > 0 and stats.prepared == stats.patched, "every changed layer was computed ahead"
        held = weights(gen)
        gen.stacks.restore()  # the same stack patched from the original weights, nothing prepared
        scratch = render(gen, stack, "patch")
        assert gen.stacks.last.stats.prepared == 0
        assert np.array_equal(prepared, scratch)
        assert_same_weights(gen, held)
        render(gen, previous, "patch")  # and from the previous stack, re-patched at the run's start
        assert np.array_equal(render(gen, stack, "patch"), scratch)
        assert gen.stacks.last.stats.prepared == 0
        assert_same_weights(gen, held)
    prepare(gen, [E(a, weight=0.0), E(b, enabled=False)])  # weight 0 / empty: the originals, handed back
    assert np.array_equal(render(gen, [E(a, weight=0.0), E(b, enabled=False)], "patch"), base)
    assert gen.stacks.patcher.patched_layers == 0
    assert_same_weights(gen, original)


def test_a_prepared_reweight_computes_only_that_styles_layers_and_never_writes_a_live_weight(
    gen, sd15_loras, partial_lora
):
    a = sd15_loras["a"]
    d_name = adapter_identity(partial_lora).adapter_name
    render(gen, [E(a), E(partial_lora)], "patch")
    d_layers = {
        layer.get_base_layer()
        for layers in gen.adapters.tuner_layers().values()
        for layer in layers
        if d_name in (getattr(layer, "lora_A", None) or {})
    }
    before = base_weights(gen)
    prepare(gen, [E(a), E(partial_lora, weight=0.4)])
    assert gen.stacks.patcher.staged_layers == len(d_layers)
    after_prepare = base_weights(gen)
    for layer, (address, values) in before.items():  # a run may be sampling meanwhile: nothing it reads moved
        assert after_prepare[layer][0] == address and torch_equal(after_prepare[layer][1], values)
    render(gen, [E(a), E(partial_lora, weight=0.4)], "patch")
    written = {
        layer
        for layer, (address, values) in base_weights(gen).items()
        if address != before[layer][0] or not torch_equal(values, before[layer][1])
    }
    assert written == d_layers
    assert gen.stacks.last.stats.prepared == gen.stacks.last.stats.patched == len(d_layers)


def test_a_run_that_starts_mid_preparation_finishes_the_rest_itself_with_the_same_bits():
    """The background thread stopped after some layers: ``sync`` swaps those in and computes the others."""
    import torch

    from app.engine.generate.weight_patch import Contribution, LowRankDelta, WeightPatcher

    torch.manual_seed(0)
    layers = [torch.nn.Linear(16, 8) for _ in range(6)]
    deltas = [LowRankDelta(torch.randn(8, 4), torch.randn(4, 16), 0.5, (8, 16)) for _ in range(3)]
    originals = [layer.weight.detach().clone() for layer in layers]

    def plan(weights):
        return {layer: [Contribution(f"s{i}", w, deltas[i]) for i, w in enumerate(weights)] for layer in layers}

    scratch = WeightPatcher()
    scratch.sync(plan([0.8, -0.3, 0.5]))
    want = [layer.weight.data.clone() for layer in layers]
    scratch.restore_all()
    assert all(torch.equal(layer.weight.data, o) for layer, o in zip(layers, originals))

    patcher = WeightPatcher()
    patcher.sync(plan([0.8, 0.1, 0.5]))
    asked = []
    staged = patcher.stage(plan([0.8, -0.3, 0.5]), stop=lambda: len(asked.append(1) or asked) > 2)
    assert staged == 2
    stats = patcher.sync(plan([0.8, -0.3, 0.5]))
    assert (stats.prepared, stats.patched) == (2, 6)
    assert all(torch.equal(layer.weight.data, w) for layer, w in zip(layers, want))
    # Staged for another stack: not used, and dropped.
    patcher.stage(plan([0.8, 0.9, 0.5]))
    stats = patcher.sync(plan([0.8, -0.3, 0.5]))
    assert (stats.prepared, stats.kept, patcher.staged_layers) == (0, 6, 0)
    patcher.restore_all()
    assert all(torch.equal(layer.weight.data, o) for layer, o in zip(layers, originals))


def test_prepare_needs_loaded_adapters_and_leaves_side_mode_alone(gen, tiny_sd15, sd15_loras, tmp_path):
    fresh = make_lora(tiny_sd15, tmp_path / "never-loaded.safetensors", family="sd1", seed=9)
    assert not gen.prepare_stack([E(fresh)])  # loading would change the model: left to the next run
    assert not gen.prepare_stack([E(tmp_path / "gone.safetensors")])
    gen.stacks.mode = "side"
    try:
        assert gen.prepare_stack([E(sd15_loras["a"], weight=0.3)])
        assert gen.stacks.wait_prepared(timeout=5) and gen.stacks.patcher.staged_layers == 0
    finally:
        gen.stacks.mode = DEFAULT_MODE
