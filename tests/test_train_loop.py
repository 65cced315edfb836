"""The training run on tiny models (CPU): real learning, cancel + resume equivalence, adapter interop, SDXL, CLI."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from app.engine.events import CancelToken, CheckpointSaved, Finished, Progress, TrainFinished, train_event_from_json
from app.engine.train import TrainConfig, train
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


@pytest.fixture(scope="module")
def style_data(tmp_path_factory) -> Path:
    """16 training + 4 held-out striped images (the held-out ones are picked by the seeded split)."""
    return make_style_set(tmp_path_factory.mktemp("style") / "stripes", 20, seed=1)


def _config(data: Path, base: Path, out: Path, **kw) -> TrainConfig:
    return tiny_run(data, base, out, **{"trigger": "stripy", "validation_images": 4, **kw})


def _collect():
    events = []
    return events, events.append


def test_learning_is_real_on_held_out_images(style_data, tiny_sd15, tmp_path):
    # The bar (FIELD_NOTES): diffusers' own script, 100 steps, r4, lr 1e-3, batch 2, 64 px: 1.188 → 0.855
    # (−28 %) on 4 unseen striped images in 107 s. Same recipe here, on images the adapter never saw, with
    # LoRA on the convolutions too: on a random tiny base, attention-only LoRA barely moves (−3 % measured),
    # because what is learnable there is mostly how the noise passes through the conv path.
    events, on_event = _collect()
    result = train(
        _config(
            style_data,
            tiny_sd15,
            tmp_path / "style.safetensors",
            steps=100,
            thumbnail=False,
            lora_targets="attention+ff+conv",
        ),
        on_event=on_event,
    )
    s = result.summary
    assert s.validation_held_out and s.validation_images == 4 and s.train_images == 16
    assert s.validation_loss_adapter < 0.85 * s.validation_loss_base, s
    progress = [e for e in events if isinstance(e, Progress) and e.phase == "train"]
    assert [p.step for p in progress] == list(range(1, 101))
    assert progress[-1].smoothed_loss is not None and progress[-1].it_per_s > 0 and progress[-1].eta_s == 0
    assert isinstance(events[-1], Finished) and not events[-1].cancelled


def test_cancel_within_one_step_then_resume_equals_uninterrupted(style_data, tiny_sd15, tmp_path):
    train(_config(style_data, tiny_sd15, tmp_path / "a.safetensors", thumbnail=False))  # uninterrupted reference
    cancel = CancelToken()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, Progress) and event.phase == "train" and event.step == 3:
            cancel.cancel()

    out_b = tmp_path / "b.safetensors"
    stopped = train(_config(style_data, tiny_sd15, out_b, thumbnail=False), on_event=on_event, cancel=cancel)
    logs = [e.message for e in events if e.kind == "log"]
    assert any("Cached 16 latents (16 reused from disk)" in m for m in logs), logs  # the first run's cache
    assert stopped.cancelled and stopped.steps == 3  # the step in flight finished, no further step started
    assert max(e.step for e in events if isinstance(e, Progress) and e.phase == "train") == 3
    assert any(isinstance(e, CheckpointSaved) and e.step == 3 for e in events)
    assert isinstance(events[-1], Finished) and events[-1].cancelled and out_b.is_file()
    with safe_open(str(out_b), "pt") as f:
        assert f.metadata()["ss_steps"] == "3"
    resumed = train(_config(style_data, tiny_sd15, out_b, resume=True, thumbnail=False))
    assert resumed.summary.started_at_step == 3 and resumed.steps == 6
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(out_b))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    # The comparison can fail: the weights at the interruption differ from the final ones.
    at_3 = load_file(str(tmp_path / "b.checkpoints" / "step-000003" / "lora.safetensors"))
    at_6 = load_file(str(resumed.checkpoint / "lora.safetensors"))
    assert any((at_3[k] - at_6[k]).abs().max() > 1e-6 for k in at_6 if "lora_B" in k)
    with pytest.raises(Exception, match="rank changed"):
        train(_config(style_data, tiny_sd15, out_b, resume=True, rank=8, steps=9, thumbnail=False))
    # A fresh (not resumed) run under the same name starts its own checkpoint history.
    fresh = train(_config(style_data, tiny_sd15, out_b, steps=2, thumbnail=False))
    assert [p.name for p in sorted((tmp_path / "b.checkpoints").iterdir())] == ["step-000002"]
    assert fresh.steps == 2


def test_adapter_round_trips_through_diffusers_kohya_loader(style_data, tiny_sd15, tmp_path, caplog):
    from diffusers import StableDiffusionPipeline

    from app.engine.train.lora import UNET_TARGETS, attach_lora
    from app.engine.train.model import load_training_base

    out = tmp_path / "rt.safetensors"
    cfg = _config(
        style_data,
        tiny_sd15,
        out,
        steps=4,
        sample_steps=2,
        sample_every=4,
        trigger="zq style",
        lora_targets="attention+ff+conv",
    )
    result = train(cfg)
    with safe_open(str(out), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    for name in (
        "ss_network_module",
        "ss_network_dim",
        "ss_network_alpha",
        "ss_base_model_version",
        "ss_resolution",
        "ss_steps",
        "ss_learning_rate",
        "ss_num_train_images",
        "ss_tag_frequency",
        "ss_output_name",
        "modelspec.sai_model_spec",
        "modelspec.architecture",
        "modelspec.title",
        "modelspec.trigger_phrase",
        "modelspec.date",
        "modelspec.thumbnail",
        "modelspec.hash_sha256",
    ):
        assert meta.get(name), name
    assert meta["ss_base_model_version"] == "sd_v1" and meta["modelspec.trigger_phrase"] == "zq style"
    assert meta["ss_num_train_images"] == "16" and meta["ss_steps"] == "4"
    assert json.loads(meta["ss_tag_frequency"])["stripes"]["zq style"] == 20
    assert tomllib.loads(meta["styleshelf.train_config"])["rank"] == 4
    assert meta["modelspec.thumbnail"].startswith("data:image/")
    assert (
        len(list((tmp_path / "rt.samples").glob("step-000004-*.png"))) == 1
    )  # every caption is "zq style, stripes": one distinct prompt

    # Diffusers only *warns* about keys it cannot place: capture its log and demand silence.
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd15), safety_checker=None)
    with caplog.at_level(logging.WARNING):
        pipe.load_lora_weights(str(out), adapter_name="style")
    assert not [
        r
        for r in caplog.records
        if "unexpected" in r.getMessage().lower()
        or "not" in r.getMessage().lower()
        and "lora" in r.getMessage().lower()
    ]
    from peft.tuners.lora import LoraLayer

    loaded = [m for m in pipe.unet.modules() if isinstance(m, LoraLayer) and "style" in m.lora_A]
    assert len(loaded) * 3 == len(keys)  # every module in the file landed somewhere (down, up, alpha each)

    # Same UNet output as the trained model (rebuilt from the final checkpoint's PEFT weights).
    trained = load_training_base(tiny_sd15)
    attach_lora(trained.unet, rank=4, alpha=4.0, targets=UNET_TARGETS["attention+ff+conv"], seed=0)
    ckpt = load_file(str(result.checkpoint / "lora.safetensors"))
    from app.engine.train.lora import load_lora_state_dict

    load_lora_state_dict(trained.unet, {k.split(".", 1)[1]: v for k, v in ckpt.items()})
    gen = torch.Generator().manual_seed(0)
    x, t, h = torch.randn(1, 4, 8, 8, generator=gen), torch.tensor([500]), torch.randn(1, 77, 32, generator=gen)
    with torch.no_grad():
        ours = trained.unet(x, t, h).sample
        theirs = pipe.unet(x, t, h).sample
        pipe.unet.disable_adapters()
        plain = pipe.unet(x, t, h).sample
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    assert (theirs - plain).abs().max() > 1e-4  # the LoRA really changes the output


def test_sdxl_trains_unet_and_both_text_encoders(style_data, tiny_sdxl, tmp_path, caplog):
    out = tmp_path / "xl.safetensors"
    # Also exercises mirrored samples, a cosine schedule with warm-up and gradient checkpointing.
    result = train(
        _config(
            style_data,
            tiny_sdxl,
            out,
            steps=2,
            train_text_encoder=True,
            validation_images=0,
            thumbnail=False,
            flip=True,
            lr_schedule="cosine",
            warmup_steps=1,
            gradient_checkpointing=True,
        )
    )
    assert result.summary.family == "sdxl"
    with safe_open(str(out), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    prefixes = {k.split("_", 2)[0] + "_" + k.split("_", 2)[1] for k in keys}
    assert prefixes == {"lora_unet", "lora_te1", "lora_te2"}
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    # The text-encoder LoRA moved away from its zero start (its gradients flowed).
    te_up = [v for k, v in load_file(str(out)).items() if k.startswith("lora_te2_") and "lora_up" in k]
    assert te_up and any(v.abs().max() > 0 for v in te_up)
    # diffusers' SDXL loader places every key: UNet and both text encoders.
    from diffusers import StableDiffusionXLPipeline
    from peft.tuners.lora import LoraLayer

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))
    with caplog.at_level(logging.WARNING):
        pipe.load_lora_weights(str(out), adapter_name="xl")
    assert not [r for r in caplog.records if "unexpected" in r.getMessage().lower()]
    placed = sum(
        1
        for part in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2)
        for m in part.modules()
        if isinstance(m, LoraLayer) and "xl" in m.lora_A
    )
    assert placed * 3 == len(keys)


def test_v_prediction_model_trains_and_validates(style_data, tiny_sd2v, tmp_path):
    result = train(
        _config(
            style_data,
            tiny_sd2v,
            tmp_path / "v.safetensors",
            steps=2,
            thumbnail=False,
            min_snr_gamma=5.0,
            noise_offset=0.05,
            cache_latents=False,
            random_crop=True,
            gradient_accumulation=2,
        )
    )
    assert result.summary.family == "sd2-v" and result.summary.validation_loss_adapter > 0
    with safe_open(str(tmp_path / "v.safetensors"), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sd_v2_v"


def test_cli_json_events_are_the_only_stdout(style_data, tiny_sd15, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cli.safetensors"
    code = main(
        [
            "train",
            str(style_data),
            "--base",
            str(tiny_sd15),
            "--out",
            str(out),
            "--steps",
            "2",
            "--rank",
            "2",
            "--resolution",
            "64",
            "--batch-size",
            "1",
            "--seed",
            "3",
            "--json-events",
            "--set",
            "thumbnail=false",
            "--set",
            "validation_images=2",
            "--set",
            "cpu_threads=1",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    events = [train_event_from_json(line) for line in lines]  # every line parses
    assert all(json.loads(line)["event"] in ("log", "progress", "checkpoint", "finished") for line in lines)
    assert isinstance(events[-1], TrainFinished) and events[-1].output == str(out)
    # The summary comes back typed, as the child filled it.
    assert events[-1].summary.steps == 2 and events[-1].summary.validation_images == 2
    assert events[-1].summary.saved == ["adapter", "checkpoint"] and events[-1].summary.validation_loss_base > 0
    assert [e.step for e in events if isinstance(e, Progress) and e.phase == "train"] == [1, 2]


def test_out_of_memory_ends_with_what_to_lower(style_data, tiny_sd15, tmp_path, monkeypatch):
    from app.engine.errors import UserError
    from app.engine.train import loop

    def no_memory(*_a, **_k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "denoising_loss", no_memory)
    events, on_event = _collect()
    with pytest.raises(UserError) as info:
        train(_config(style_data, tiny_sd15, tmp_path / "oom.safetensors", steps=1, batch_size=2), on_event=on_event)
    assert "Ran out of memory" in str(info.value) and "batch size (now 2)" in str(info.value)
    assert "gradient checkpointing" in str(info.value)
    assert events[-1].kind == "error" and "Ran out of memory" in events[-1].message
    assert not (tmp_path / "oom.safetensors").exists()
