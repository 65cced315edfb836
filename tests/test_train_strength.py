"""Partial-strength training (``partial_strength``): the adapter runs at a random weight on pictures blended that
far from the base model's plain redraw, so a shelf weight of 0.5 shows about half the look.

What it buys on the bundled styles (weight 0.5 reaching ≥ 30 % of the way) is checked on the shipped adapters in
test_demo_assets; these tests check its parts and that a run using it resumes exactly."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file

from app.engine.errors import UserError
from app.engine.events import CancelToken, Progress
from app.engine.train import train
from app.engine.train.strength import plain_estimate, set_lora_strength
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


def test_set_lora_strength_scales_the_adapter_change_and_restores_it():
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(0)
    net = torch.nn.Module()
    net.proj = torch.nn.Linear(8, 8)
    model = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=2, target_modules=["proj"]), net)
    torch.nn.init.normal_(model.proj.lora_B["default"].weight)
    x = torch.randn(3, 8)
    with torch.no_grad():
        base = torch.nn.functional.linear(x, model.proj.base_layer.weight, model.proj.base_layer.bias)
        full = model.proj(x)
        set_lora_strength(model, 0.5)
        half = model.proj(x)
        set_lora_strength(model, 0.25)  # not compounded with the 0.5 before it
        quarter = model.proj(x)
        set_lora_strength(model, 1.0)
        again = model.proj(x)
    assert (full - base).abs().max() > 0.1
    torch.testing.assert_close(half - base, 0.5 * (full - base))
    torch.testing.assert_close(quarter - base, 0.25 * (full - base))
    torch.testing.assert_close(again, full)


class _Oracle(torch.nn.Module):
    """A "UNet" that predicts the true noise (or velocity): the plain estimate must give the clean latents back."""

    def __init__(self, answer: torch.Tensor):
        super().__init__()
        self.answer = answer

    def forward(self, noisy, timesteps, encoder_hidden_states=None, added_cond_kwargs=None, return_dict=False):
        return (self.answer,)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_plain_estimate_is_the_clean_picture_implied_by_the_prediction(prediction):
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction)
    gen = torch.Generator().manual_seed(1)
    latents, noise = torch.randn((2, 4, 8, 8), generator=gen), torch.randn((2, 4, 8, 8), generator=gen)
    t = torch.tensor([500, 790])
    answer = noise if prediction == "epsilon" else scheduler.get_velocity(latents, noise, t)
    got = plain_estimate(_Oracle(answer), scheduler, latents, noise, t, None, None, None, prediction)
    torch.testing.assert_close(got, latents, rtol=1e-4, atol=1e-4)


def test_partial_strength_run_trains_and_resumes_to_the_uninterrupted_weights(tiny_sd15, tmp_path):
    data = make_style_set(tmp_path / "set", 6, seed=5)

    def config(out, **kw):
        return tiny_run(data, tiny_sd15, out, steps=4, thumbnail=False, partial_strength=0.7, **kw)

    assert train(config(tmp_path / "a.safetensors")).steps == 4
    cancel = CancelToken()

    def on_event(event):
        if isinstance(event, Progress) and event.phase == "train" and event.step == 2:
            cancel.cancel()

    out = tmp_path / "b.safetensors"
    assert train(config(out), on_event=on_event, cancel=cancel).steps == 2
    assert train(config(out, resume=True)).summary.started_at_step == 2
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(out))
    ups = [k for k in a if k.endswith("lora_up.weight")]
    assert ups and any(a[k].abs().max() > 0 for k in ups)
    for key in a:  # the strength and the plain estimate's noise are replayed from the step's generator
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "other, message",
    [({"train_text_encoder": True}, "text-encoder training"), ({"preserve_unconditional": 1.0}, "cannot be combined")],
)
def test_partial_strength_refuses_what_it_cannot_combine_with(tiny_sd15, tmp_path, other, message):
    cfg = tiny_run(tmp_path, tiny_sd15, tmp_path / "x.safetensors", partial_strength=0.5, **other)
    with pytest.raises(UserError, match=message):
        cfg.check()
