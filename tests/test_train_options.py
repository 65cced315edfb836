"""Training options: the optimiser choice (Adafactor trains and resumes exactly like AdamW), the CLI default size."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from app.engine.events import CancelToken, Progress
from app.engine.train import TrainConfig, train
from app.engine.train.optimizers import make_optimizer
from test_train_data import make_style_set


def _config(data, base, out, **kw) -> TrainConfig:
    settings = dict(dataset_dir=str(data), base=str(base), out=str(out), steps=4, rank=4, learning_rate=1e-3,
                    resolution=64, batch_size=2, checkpoint_every=0, validation_images=0, cpu_threads=1,
                    thumbnail=False, optimizer="adafactor")
    settings.update(kw)
    return TrainConfig(**settings)


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
    assert resumed.summary["started_at_step"] == 2 and resumed.steps == 4
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
        return train_cmd.build_config(parser.parse_args(["train", str(tmp_path), "--out", "x.safetensors", *argv])).resolution

    assert resolution("--base", str(tiny_sd15)) == 64  # 32×32 latents, one VAE downsampler
    assert resolution("--base", str(DEMO_MODEL_DIR)) == 64
    assert resolution("--base", str(tiny_sd15), "--resolution", "96") == 96
    assert resolution("--base", str(tiny_sd15), "--preset", "fast style") == 512  # presets carry their own
