"""DoRA and LoKr training (``network = dora | lokr``): the saved file rebuilds the trained model in our own loader
and in ``lycoris-lora``'s, a run resumes to the uninterrupted weights, and the setting reaches CLI and config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from app.engine.errors import UserError
from app.engine.events import CancelToken, Progress
from app.engine.train import TrainConfig, train
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


@pytest.fixture(scope="module")
def style_data(tmp_path_factory) -> Path:
    return make_style_set(tmp_path_factory.mktemp("style") / "stripes", 6, seed=2)


def _config(data: Path, base: Path, out: Path, **kw) -> TrainConfig:
    return tiny_run(
        data,
        base,
        out,
        **{"steps": 4, "learning_rate": 1e-2, "thumbnail": False, "lora_targets": "attention+ff+conv", **kw},
    )


def _trained_unet(base: Path, cfg: TrainConfig, checkpoint: Path):
    """The run's own PEFT model at its last step, rebuilt from the checkpoint (PEFT names, no conversion)."""
    from app.engine.train.lora import UNET_TARGETS, attach_lora, load_lora_state_dict
    from app.engine.train.model import load_training_base

    unet = load_training_base(base).unet
    attach_lora(
        unet,
        rank=cfg.rank,
        alpha=cfg.resolved_alpha(),
        targets=UNET_TARGETS[cfg.lora_targets],
        seed=0,
        network=cfg.network,
        lokr_factor=cfg.lokr_factor,
    )
    state = load_file(str(checkpoint / "lora.safetensors"))
    load_lora_state_dict(unet, {k.split(".", 1)[1]: v for k, v in state.items()})
    return unet


def _lycoris_unet(base: Path, adapter: Path):
    """A fresh UNet with the file applied by lycoris-lora's own loader (its kohya names renamed to the generic
    wrapper's prefix), and its network."""
    pytest.importorskip("lycoris", reason="lycoris-lora is a test dependency (pip install -e .[dev])")
    from diffusers import UNet2DConditionModel
    from lycoris import create_lycoris_from_weights

    unet = UNet2DConditionModel.from_pretrained(str(base), subfolder="unet")
    weights = {k.replace("lora_unet_", "lycoris_", 1): v for k, v in load_file(str(adapter)).items()}
    net, _ = create_lycoris_from_weights(1.0, None, unet, weights_sd=weights)
    assert len(net.loras) == len({k.split(".")[0] for k in weights})  # lycoris built a module for every one
    net.apply_to()
    return unet, net


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, 4, 8, 8, generator=gen), torch.tensor([500]), torch.randn(1, 77, 32, generator=gen)


CASES = {
    "dora": {"network": "dora"},
    # factor 4 on the tiny UNet gives both LoKr shapes: 32-wide layers keep a full lokr_w2, wider ones a factorised
    # one; alpha 2 ≠ rank 4 checks the scale on both (folded into lokr_w1 where readers assume scale 1).
    "lokr": {"network": "lokr", "lokr_factor": 4, "alpha": 2.0},
}


@pytest.mark.parametrize("case", CASES)
def test_saved_file_gives_the_trained_unet_in_our_loader_and_lycoris(case, style_data, tiny_sd15, tmp_path):
    from diffusers import StableDiffusionPipeline

    from app.engine.adapters import load_into_pipeline, read_adapter_info

    out = tmp_path / f"{case}.safetensors"
    cfg = _config(style_data, tiny_sd15, out, **CASES[case])
    result = train(cfg)
    with safe_open(str(out), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert meta["ss_network_module"] == "lycoris.kohya"
    args = json.loads(meta["ss_network_args"])
    assert args["conv_dim"] == "4" and read_adapter_info(out).algorithm == case
    if case == "dora":
        assert args == {"conv_dim": "4", "conv_alpha": "4", "algo": "lora", "dora_wd": "True", "wd_on_output": "True"}
    else:
        assert args["algo"] == "lokr" and args["factor"] == "4" and args["conv_alpha"] == "2"
        assert any(k.endswith(".lokr_w2") for k in keys) and any(k.endswith(".lokr_w2_b") for k in keys)

    x, t, h = _inputs()
    trained = _trained_unet(tiny_sd15, cfg, result.checkpoint)
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15), safety_checker=None)
    with torch.no_grad():
        reference = trained(x, t, h).sample
        plain = pipe.unet(x, t, h).sample
    assert (reference - plain).abs().max() > 1e-3  # four steps really changed the model

    report = load_into_pipeline(pipe, out, "style")
    assert report.ok
    lycoris_unet, net = _lycoris_unet(tiny_sd15, out)
    with torch.no_grad():
        ours = pipe.unet(x, t, h).sample
        theirs = lycoris_unet(x, t, h).sample
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(theirs, reference, rtol=1e-4, atol=1e-5)

    if case == "dora":
        # lycoris' merged weight of every module equals PEFT's merge of the trained layer (for LoKr with
        # alpha ≠ dim, lycoris 4.1.3's get_merged_weight scales twice: its forward pass, checked above, is the truth).
        layers = dict(trained.named_modules())
        names = {id(m): n for n, m in lycoris_unet.named_modules()}
        moved = 0
        with torch.no_grad():
            for module in net.loras:
                org = module.org_module[0]
                layer = layers[names[id(org)]]
                base = layer.get_base_layer().weight.detach().clone()
                layer.merge(adapter_names=["default"])
                merged = layer.get_base_layer().weight.detach().clone()
                layer.unmerge()
                theirs_w = module.get_merged_weight(multiplier=1, shape=org.weight.shape)[0]
                torch.testing.assert_close(theirs_w, merged, rtol=1e-5, atol=1e-6)
                scale = module.dora_scale.reshape(-1)
                assert module.dora_scale.shape[0] == org.weight.shape[0]  # [out, 1(, 1, 1)]: per output row
                moved += bool((scale - base.reshape(base.shape[0], -1).norm(dim=1)).abs().max() > 1e-6)
        assert moved > len(net.loras) // 2  # the magnitudes trained, not only the LoRA pair

        # diffusers 0.42's SD pipelines drop ``dora_scale`` (with a warning) and apply the file as plain LoRA, as
        # the README says. When this starts failing, diffusers reads DoRA files: update the README's table.
        plain_lora = StableDiffusionPipeline.from_pretrained(str(tiny_sd15), safety_checker=None)
        plain_lora.load_lora_weights(str(out))
        with torch.no_grad():
            by_diffusers = plain_lora.unet(x, t, h).sample
        assert (by_diffusers - plain).abs().max() > 1e-3  # the LoRA pair loaded…
        assert (by_diffusers - reference).abs().max() > 1e-3  # …but not the magnitudes


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_run_resumes_to_the_uninterrupted_weights_with_samples_and_validation(case, style_data, tiny_sd15, tmp_path):
    train(_config(style_data, tiny_sd15, tmp_path / "a.safetensors", **CASES[case]))  # the uninterrupted run
    cancel = CancelToken()

    def on_event(event):
        if isinstance(event, Progress) and event.phase == "train" and event.step == 2:
            cancel.cancel()

    out = tmp_path / "b.safetensors"
    assert train(_config(style_data, tiny_sd15, out, **CASES[case]), on_event=on_event, cancel=cancel).steps == 2
    with pytest.raises(UserError, match="network changed"):
        train(_config(style_data, tiny_sd15, out, resume=True, **{**CASES[case], "network": "lora"}))
    resumed = train(_config(style_data, tiny_sd15, out, resume=True, sample_every=4, thumbnail=True, **CASES[case]))
    assert resumed.summary.started_at_step == 2 and resumed.steps == 4
    assert resumed.summary.validation_loss_adapter is not None
    assert resumed.summary.validation_loss_adapter != resumed.summary.validation_loss_base
    assert len(list((tmp_path / "b.samples").glob("step-000004-*.png"))) >= 1
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(out))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    from app.engine.train.checkpoint_export import export_checkpoint

    exported = export_checkpoint(tmp_path / "b.checkpoints", 4, tmp_path / "step4.safetensors")
    with safe_open(str(exported), "pt") as f:  # a kept checkpoint exports in the same layout and metadata
        assert f.metadata()["ss_network_module"] == "lycoris.kohya"
        assert json.loads(f.metadata()["ss_network_args"])["algo"] == {"dora": "lora", "lokr": "lokr"}[case]
        assert set(f.keys()) == set(b.keys())
    at_2 = load_file(str(tmp_path / "b.checkpoints" / "step-000002" / "lora.safetensors"))
    at_4 = load_file(str(resumed.checkpoint / "lora.safetensors"))
    assert any((at_2[k] - at_4[k]).abs().max() > 1e-6 for k in at_4)  # the comparison above can fail


def test_network_setting_reaches_config_cli_and_checks():
    import argparse

    from app.commands import train as train_command
    from app.engine.configbase import describe
    from app.engine.train.config import NETWORKS

    setting = {s.name: s for s in describe(TrainConfig)}["network"]
    assert setting.default == "lora" and tuple(setting.choices) == NETWORKS and setting.same_on_resume
    parser = argparse.ArgumentParser()
    train_command.register(parser.add_subparsers())
    args = parser.parse_args(["train", "data", "--base", "m", "--network", "lokr", "--lokr-factor", "8"])
    cfg = train_command.build_config(args)
    assert (cfg.network, cfg.lokr_factor) == ("lokr", 8)
    with pytest.raises((SystemExit, UserError)):
        train_command.build_config(parser.parse_args(["train", "data", "--network", "loha"]))
    with pytest.raises(UserError, match="Network"):
        TrainConfig(network="loha")  # an invalid config cannot be built


def test_lokr_scale_is_folded_only_where_readers_assume_scale_one():
    from app.engine.adapters.peft_lycoris import network_of, peft_to_lycoris

    lora = {
        "down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.ones(2, 8),
        "down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.ones(8, 2),
    }
    assert network_of(lora) == "lora"
    full = {
        "mid_block.attentions.0.proj_in.lokr_w1": torch.ones(2, 2),
        "mid_block.attentions.0.proj_in.lokr_w2": torch.ones(4, 4),
    }
    split = {
        "mid_block.attentions.0.proj_out.lokr_w1": torch.ones(2, 2),
        "mid_block.attentions.0.proj_out.lokr_w2_a": torch.ones(4, 1),
        "mid_block.attentions.0.proj_out.lokr_w2_b": torch.ones(1, 4),
    }
    out = peft_to_lycoris({**full, **split}, "unet", sdxl=False, rank=4, alpha=2.0)
    assert network_of(full) == "lokr"
    assert float(out["lora_unet_mid_block_attentions_0_proj_in.lokr_w1"][0, 0]) == 0.5  # PEFT's alpha/r, folded
    assert float(out["lora_unet_mid_block_attentions_0_proj_out.lokr_w1"][0, 0]) == 1.0  # readers scale by alpha/r
    assert float(out["lora_unet_mid_block_attentions_0_proj_out.alpha"]) == 2.0


def test_dora_magnitudes_get_no_weight_decay_and_lora_groups_stay_as_they_were():
    from app.engine.models.tiny import build_tiny_pipeline
    from app.engine.train.lora import UNET_TARGETS, attach_lora, without_magnitude_decay
    from app.engine.train.optimizers import make_optimizer

    for network in ("lora", "dora"):
        unet = build_tiny_pipeline("sd15", seed=0).unet
        params = attach_lora(unet, rank=4, alpha=4.0, targets=UNET_TARGETS["attention"], seed=0, network=network)
        groups = [{"params": params, "lr": 0.1}]
        split = without_magnitude_decay(groups, [unet])
        if network == "lora":
            assert split is groups
            continue
        assert [len(g["params"]) for g in split] == [len(params) * 2 // 3, len(params) // 3]
        before = {n: p.detach().clone() for n, p in unet.named_parameters() if p.requires_grad}
        optimizer = make_optimizer("adamw", split, lr=0.1, weight_decay=1.0)
        for p in params:
            p.grad = torch.zeros_like(p)  # no gradient: the step is weight decay alone
        optimizer.step()
        for name, p in unet.named_parameters():
            if "lora_magnitude_vector" in name:
                assert torch.equal(p, before[name]), name  # still ‖W‖: the layer is not shrunk
            elif "lora_A" in name:
                torch.testing.assert_close(p, before[name] * 0.9)  # decay lr·wd = 0.1 still applies to the pair
