"""Training options: the optimiser (Adafactor trains and resumes like AdamW), caption dropout, the CLI default size."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from app.engine.events import CancelToken, Progress
from app.engine.train import TrainConfig, train
from app.engine.train.optimizers import make_optimizer
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


def _config(data, base, out, **kw) -> TrainConfig:
    # The config's own sample steps and min-SNR weighting, unlike the other training tests.
    defaults = {"sample_steps": 20, "min_snr_gamma": 5.0}
    return tiny_run(data, base, out, **{"steps": 4, "thumbnail": False, "optimizer": "adafactor", **defaults, **kw})


def test_adafactor_keeps_less_state_than_adamw():
    weight = torch.nn.Parameter(torch.randn(64, 32))
    sizes = {}
    for name in ("adamw", "adafactor"):
        opt = make_optimizer(name, [{"params": [weight]}], lr=1e-3, weight_decay=0.0)
        weight.grad = torch.randn_like(weight)
        opt.step()
        sizes[name] = sum(v.numel() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    assert sizes["adamw"] >= 2 * weight.numel() and sizes["adafactor"] < weight.numel() // 4, sizes
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", [{"params": [weight]}], lr=1e-3, weight_decay=0.0)


def test_adafactor_run_resumes_to_the_uninterrupted_weights(tiny_sd15, tmp_path):
    data = make_style_set(tmp_path / "set", 6, seed=3)
    reference = train(_config(data, tiny_sd15, tmp_path / "a.safetensors"))
    assert reference.steps == 4
    cancel = CancelToken()

    def on_event(event):
        if isinstance(event, Progress) and event.phase == "train" and event.step == 2:
            cancel.cancel()

    out = tmp_path / "b.safetensors"
    assert train(_config(data, tiny_sd15, out), on_event=on_event, cancel=cancel).steps == 2
    with pytest.raises(Exception, match="optimizer changed"):
        train(_config(data, tiny_sd15, out, resume=True, optimizer="adamw"))
    resumed = train(_config(data, tiny_sd15, out, resume=True))
    assert resumed.summary.started_at_step == 2 and resumed.steps == 4
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(out))
    assert a.keys() == b.keys()
    ups = [k for k in a if k.endswith("lora_up.weight")]
    assert ups and any(a[k].abs().max() > 0 for k in ups)  # it trained (LoRA up-weights start at zero)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_cli_trains_at_the_base_models_own_size_unless_told(tiny_sd15, tmp_path):
    import argparse

    from app.commands import train as train_cmd
    from app.engine.paths import DEMO_MODEL_DIR

    parser = argparse.ArgumentParser()
    train_cmd.register(parser.add_subparsers())

    def resolution(*argv: str) -> int:
        return train_cmd.build_config(
            parser.parse_args(["train", str(tmp_path), "--out", "x.safetensors", *argv])
        ).resolution

    assert resolution("--base", str(tiny_sd15)) == 64  # 32×32 latents, one VAE downsampler
    assert resolution("--base", str(DEMO_MODEL_DIR)) == 64
    assert resolution("--base", str(tiny_sd15), "--resolution", "96") == 96
    assert resolution("--base", str(tiny_sd15), "--preset", "fast style") == 512  # presets carry their own


def test_caption_dropout_swaps_in_the_empty_caption_replayably():
    from types import SimpleNamespace

    from app.engine.train.cache import Prepared, Sample, batch_inputs

    captions = ["stripy, a red circle", "stripy, a blue square", ""]
    samples = [Sample(item=i, flip=False, crop=None, caption=i % 2, original_size=(64, 64)) for i in range(400)]
    data = Prepared(
        samples,
        captions,
        latents=[torch.zeros(4, 8, 8)] * 400,
        text_hidden=torch.arange(3.0)[:, None, None].expand(3, 77, 8).clone(),
        empty_caption=2,
    )
    base = SimpleNamespace(is_sdxl=False)

    def rows(p: float, seed: int = 0) -> list[int]:
        _, hidden, _, _ = batch_inputs(
            base,
            data,
            list(range(400)),
            torch.Generator().manual_seed(seed),
            random_crop=False,
            text_encoders=[],
            device="cpu",
            dtype=torch.float32,
            caption_dropout=p,
        )
        return hidden[:, 0, 0].long().tolist()

    assert rows(0.0) == [i % 2 for i in range(400)]
    assert rows(1.0) == [2] * 400
    half = rows(0.5)
    assert 150 < half.count(2) < 250 and half == rows(0.5)  # same generator state, same choices (resume)
    assert all(r in (2, i % 2) for i, r in enumerate(half))
    gen = torch.Generator().manual_seed(0)
    batch_inputs(base, data, [0, 1], gen, random_crop=False, text_encoders=[], device="cpu", dtype=torch.float32)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state())  # off: no draw at all


def test_caption_dropout_run_records_kohya_metadata(tiny_sd15, tmp_path):
    from safetensors import safe_open

    data = make_style_set(tmp_path / "set", 4, seed=5)
    out = tmp_path / "cd.safetensors"
    train(_config(data, tiny_sd15, out, steps=2, optimizer="adamw", caption_dropout=0.5))
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["ss_caption_dropout_rate"] == "0.5"
