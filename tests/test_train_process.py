"""Training as a process: two CPU ranks under torchrun (gloo), and kill -9 never leaving a broken file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from app.engine.train import checkpoints
from app.engine.train.checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from tests.helpers.datasets import make_style_set

REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, STYLESHELF_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _train_args(data: Path, base: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        str(data),
        "--base",
        str(base),
        "--out",
        str(out),
        "--rank",
        "4",
        "--resolution",
        "64",
        "--batch-size",
        "2",
        "--json-events",
        "--set",
        "thumbnail=false",
        "--set",
        "validation_images=2",
        "--set",
        "cpu_threads=1",
        *extra,
    ]


def test_two_cpu_ranks_end_identical_and_only_rank0_writes(tiny_sd15, tmp_path):
    data = make_style_set(tmp_path / "data", 10, seed=2)
    out_dir = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "app.cli",
        *_train_args(data, tiny_sd15, out_dir / "dist.safetensors", "--steps", "4"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    finished = [e for e in events if e["event"] == "finished"]
    assert len(finished) == 1, "only rank 0 reports"
    summary = finished[0]["summary"]
    assert summary["processes"] == 2
    # Each rank hashed its own final LoRA weights; DDP's all-reduce must have kept them identical
    # although the ranks trained on different batches.
    assert len(summary["rank_checksums"]) == 2 and summary["ranks_in_sync"], summary["rank_checksums"]
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert written == [
        "dist.checkpoints/step-000004/lora.safetensors",
        "dist.checkpoints/step-000004/optimizer.safetensors",
        "dist.checkpoints/step-000004/state.json",
        "dist.safetensors",
    ]
    assert len([e for e in events if e["event"] == "checkpoint"]) == 1


def test_a_save_that_dies_midway_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    # What kill -9 during a save looks like from the disk: a temporary folder with partial files.
    folder = tmp_path / "run.checkpoints"
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([param], lr=0.1)
    param.grad = torch.ones(3)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(
        folder, step=5, lora={"unet.a": param.detach().clone()}, optimizer=opt, scheduler=sched, extra={}, keep=2
    )
    real_save = checkpoints.save_file
    calls = []

    def dying_save(tensors, path):
        calls.append(path)
        if len(calls) == 2:  # the LoRA file is written, the optimizer file is not
            raise KeyboardInterrupt("simulated kill")
        real_save(tensors, path)

    monkeypatch.setattr(checkpoints, "save_file", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(
            folder, step=10, lora={"unet.a": param.detach() * 2}, optimizer=opt, scheduler=sched, extra={}, keep=2
        )
    monkeypatch.setattr(checkpoints, "save_file", real_save)
    assert [p.name for p in list_checkpoints(folder)] == ["step-000005"]
    ckpt = load_checkpoint(latest_checkpoint(folder))
    assert ckpt.step == 5 and torch.equal(ckpt.lora["unet.a"], param.detach())
    assert ckpt.optimizer["state"][0]["exp_avg"].shape == (3,)
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    opt2.load_state_dict(ckpt.optimizer)  # our safetensors + JSON form restores a real optimizer
    assert opt2.state_dict()["param_groups"][0]["betas"] == (0.9, 0.999)


def test_restore_returns_the_step_from_the_checkpoint_and_leaves_the_global_rng_to_the_caller(tmp_path):
    from app.engine.train.checkpoints import restore
    from app.engine.train.config import TrainConfig

    folder = tmp_path / "run.checkpoints"
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([param], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    torch.manual_seed(11)
    saved_rng = torch.random.get_rng_state()
    path = save_checkpoint(
        folder,
        step=7,
        lora={},
        optimizer=opt,
        scheduler=sched,
        keep=2,
        extra={"loss_history": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03]},
    )
    path.rename(folder / "step-000099")  # the step comes from the checkpoint itself, not its folder's name
    torch.manual_seed(12)
    before = torch.random.get_rng_state()
    config = TrainConfig(steps=10)
    ckpt = restore(folder, config, modules={}, optimizer=opt, scheduler=sched)
    assert ckpt is not None and ckpt.step == 7 and ckpt.path.name == "step-000099"
    assert ckpt.loss_history == [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04]  # only the steps up to the checkpoint
    assert torch.equal(torch.random.get_rng_state(), before)  # restoring does not reseed behind the caller
    assert torch.equal(ckpt.rng_state, saved_rng)


@pytest.mark.slow
def test_kill_9_at_any_moment_never_leaves_a_broken_adapter_or_checkpoint(tiny_sd15, tmp_path):
    data = make_style_set(tmp_path / "data", 6, seed=3)
    out = tmp_path / "out" / "k.safetensors"
    env = _env(tmp_path / "home")
    for delay in (0.0, 0.15, 0.4):
        shutil.rmtree(out.parent, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "app.cli",
            *_train_args(
                data, tiny_sd15, out, "--steps", "40", "--checkpoint-every", "1", "--set", "keep_checkpoints=2"
            ),
        ]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        seen = 0
        for line in proc.stdout:  # wait for a few checkpoint saves, then kill in the middle of the next ones
            if json.loads(line)["event"] == "checkpoint":
                seen += 1
                if seen == 3:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=60)
        proc.stdout.close()
        found = list_checkpoints(out.with_name("k.checkpoints"))
        assert found, "the checkpoints written before the kill are there"
        for path in found:
            ckpt = load_checkpoint(path)  # every visible checkpoint loads completely
            assert ckpt.lora and ckpt.optimizer["state"]
        assert not out.exists() or load_file(str(out))  # an adapter is either absent or complete
        # Resuming from whatever is there works and finishes with a readable adapter.
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *_train_args(data, tiny_sd15, out, "--steps", "41", "--resume")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        with safe_open(str(out), "pt") as f:
            assert f.metadata()["ss_steps"] == "41"
        assert load_file(str(out))


@pytest.mark.slow
def test_sigterm_cancels_the_child_after_the_current_step_and_saves(tiny_sd15, tmp_path):
    # The GUI cancels its training child with SIGTERM (QProcess.terminate): it must end cleanly, saved.
    data = make_style_set(tmp_path / "data", 4, seed=4)
    out = tmp_path / "out" / "t.safetensors"
    cmd = [sys.executable, "-m", "app.cli", *_train_args(data, tiny_sd15, out, "--steps", "500")]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_env(tmp_path / "home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "progress" and events[-1]["phase"] == "train" and events[-1]["step"] == 2:
            proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    steps = [e["step"] for e in events if e["event"] == "progress" and e["phase"] == "train"]
    assert 2 <= steps[-1] <= 3  # the step in flight when the signal came may finish, no more
    assert events[-1]["event"] == "finished" and events[-1]["cancelled"] is True
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["ss_steps"] == str(steps[-1])
    assert latest_checkpoint(out.with_name("t.checkpoints")).name == f"step-{steps[-1]:06d}"
