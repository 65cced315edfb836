"""Training throughput: steps/s, samples/s, peak memory, and where a step's time goes.

On CPU the figures are process CPU time (robust on a shared machine; with ``--threads 1`` they equal the
wall time of an idle machine); the wall-clock rate on this machine is printed beside them.

    .venv/bin/python bench/train_throughput.py                 # tiny + SD1.5-shaped, caching on and off
    .venv/bin/python bench/train_throughput.py --models tiny   # just the tiny model
    .venv/bin/python bench/train_throughput.py --models sd15 --resolution 128 --steps 8 --threads 2

Each (model, caching) case runs ``train()`` itself in a fresh subprocess (so peak RSS is per case) on a
striped dataset; the SD1.5-shaped model is the published SD 1.5 UNet/VAE/CLIP-text config with random
weights (860 M UNet parameters, nothing downloaded). The step is split by timing the UNet forward, the VAE
and text encoders, and the optimiser inside the real loop; a bare UNet fwd/bwd + AdamW loop on the same
inputs is the floor, so "overhead" is what the trainer adds per step beyond the UNet and the optimiser.
Figures are medians over the steps after the warm-up ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WARMUP = 2


def build_pipe(kind: str):
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from app.engine.models.tiny import build_tiny_pipeline
    from app.engine.paths import MODEL_CONFIGS_DIR, TOKENIZER_DIR

    if kind == "tiny":
        return build_tiny_pipeline("sd15")
    cfg = MODEL_CONFIGS_DIR / "sd15"
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR)),
        unet=unet,
        scheduler=DDPMScheduler.from_pretrained(cfg / "scheduler"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _clock():
    """CPU: process CPU time, so the split holds on a machine shared with other work (use --threads 1 for
    CPU seconds ≈ wall seconds of an idle machine). GPU: wall time (steps synchronise on the loss)."""
    import torch

    return time.perf_counter if torch.cuda.is_available() else time.process_time


class Timer:
    """Adds the time of every call of a wrapped function to a bucket for the current step."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.clock = _clock()

    def wrap(self, obj, name: str, bucket: str) -> None:
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            start = self.clock()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[bucket] = self.current.get(bucket, 0.0) + self.clock() - start

        setattr(obj, name, timed)


def run_case(kind: str, cache: bool, resolution: int, steps: int, batch: int, rank: int, threads: int) -> dict:
    import resource

    import numpy as np
    import torch
    from PIL import Image

    from app.engine.events import Progress
    from app.engine.train import TrainConfig, loop
    from app.engine.train.model import TrainingBase

    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ["STYLESHELF_HOME"] = str(work / "home")
    data = work / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:resolution, 0:resolution]
    for i in range(8):
        on = np.sin((x + y) / rng.uniform(6, 12) * 2 * np.pi + rng.uniform(0, 6)) > 0
        Image.fromarray(np.where(on[..., None], [220, 60, 40], [30, 40, 120]).astype(np.uint8)).save(data / f"s{i}.png")
    pipe = build_pipe(kind)
    unet_params = sum(p.numel() for p in pipe.unet.parameters())
    timer = Timer()
    timer.wrap(pipe.unet, "forward", "unet_forward")
    timer.wrap(pipe.vae, "encode", "vae_encode")
    timer.wrap(pipe.text_encoder, "forward", "text_encode")

    def in_memory_base(_path, *, dtype, device):  # what train() loads: our random model, as it asks for it
        return TrainingBase(pipe.to(device=device, dtype=dtype), "sd1", data)

    loop.load_training_base = in_memory_base
    original_adamw = torch.optim.AdamW

    def timed_adamw(*args, **kwargs):
        opt = original_adamw(*args, **kwargs)
        began = [0.0]  # hooks, not a wrapper: the LR scheduler needs optimizer.step to stay a bound method
        opt.register_step_pre_hook(lambda *_: began.__setitem__(0, timer.clock()))
        opt.register_step_post_hook(
            lambda *_: timer.current.__setitem__(
                "optimizer", timer.current.get("optimizer", 0.0) + timer.clock() - began[0]
            )
        )
        return opt

    torch.optim.AdamW = timed_adamw
    steps_log: list[dict] = []
    last = [None, None]

    def on_event(event):
        if isinstance(event, Progress) and event.phase == "train":
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # the loss .item() already syncs; this makes it explicit
            now, wall = timer.clock(), time.perf_counter()
            if last[0] is not None:
                steps_log.append({"total": now - last[0], "wall": wall - last[1], **timer.current})
            timer.current = {}
            last[0], last[1] = now, wall
        elif isinstance(event, Progress):
            timer.current = {}
            last[0], last[1] = timer.clock(), time.perf_counter()

    cfg = TrainConfig(
        dataset_dir=str(data),
        base=str(data),
        out=str(work / "a.safetensors"),
        steps=steps,
        rank=rank,
        resolution=resolution,
        batch_size=batch,
        cache_latents=cache,
        checkpoint_every=0,
        thumbnail=False,
        validation_images=0,
        min_snr_gamma=5.0,
        cpu_threads=threads,
    )
    started = time.perf_counter()
    result = loop.train(cfg, on_event=on_event)
    wall = time.perf_counter() - started
    measured = steps_log[WARMUP - 1 :]  # the first logged interval is step 1→2; drop warm-up
    med = {
        k: statistics.median(s.get(k, 0.0) for s in measured)
        for k in ("total", "wall", "unet_forward", "vae_encode", "text_encode", "optimizer")
    }
    floor = bare_unet_floor(pipe, resolution, batch, rank, result)
    peak = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.cuda.is_available():
        peak["peak_vram_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return {
        "model": kind,
        "unet_params_m": round(unet_params / 1e6),
        "cache": cache,
        "resolution": resolution,
        "batch": batch,
        "threads": threads,
        "clock": "wall" if torch.cuda.is_available() else "cpu",
        "steps_per_s": 1 / med["total"],
        "samples_per_s": batch / med["total"],
        "wall_steps_per_s": 1 / med["wall"],
        "step_s": med["total"],
        "split_s": {k: v for k, v in med.items() if k not in ("total", "wall")},
        "bare_unet_step_s": floor,
        "wall_s": wall,
        **peak,
    }


def bare_unet_floor(pipe, resolution: int, batch: int, rank: int, result) -> float:
    """UNet fwd + bwd + AdamW on fixed inputs, with the LoRA the run attached: the least a step can cost."""
    import torch

    unet = pipe.unet
    device, dtype = unet.device, unet.dtype
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6)
    side = resolution // (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    x = torch.randn(batch, 4, side, side, device=device, dtype=dtype)
    h = torch.randn(batch, 77, pipe.text_encoder.config.hidden_size, device=device, dtype=dtype)
    t = torch.randint(0, 1000, (batch,), device=device)
    unet.train()
    times = []
    clock = _clock()
    for i in range(WARMUP + 4):
        start = clock()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = unet(x, t, h).sample.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(clock() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["tiny", "sd15"], choices=["tiny", "sd15"])
    ap.add_argument("--resolution", type=int, default=0, help="px (default: 64 tiny, 128 sd15)")
    ap.add_argument("--steps", type=int, default=0, help="steps per case (default: 12 tiny, 6 sd15)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--cache", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case as JSON
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    if args.one:
        kind, cache = args.one.split(":")
        res = args.resolution or (64 if kind == "tiny" else 128)
        steps = args.steps or (12 if kind == "tiny" else 6)
        print(json.dumps(run_case(kind, cache == "on", res, steps, args.batch, args.rank, threads)))
        return
    rows = []
    for kind in args.models:
        for cache in args.cache:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                f"{kind}:{cache}",
                "--batch",
                str(args.batch),
                "--rank",
                str(args.rank),
                "--threads",
                str(threads),
                "--resolution",
                str(args.resolution),
                "--steps",
                str(args.steps),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
            if out.returncode != 0:
                print(f"{kind} cache {cache}: FAILED\n{out.stderr[-2000:]}")
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            s = r["split_s"]
            other = r["step_s"] - sum(s.values())
            print(
                f"{kind:5s} ({r['unet_params_m']} M UNet) {r['resolution']} px batch {r['batch']} cache {cache:3s} "
                f"({r['clock']} time, {r['threads']} thread(s)): "
                f"{r['steps_per_s']:.3f} steps/s, {r['samples_per_s']:.3f} samples/s, step {r['step_s']:.3f} s "
                f"[UNet fwd {s['unet_forward']:.3f}, VAE {s['vae_encode']:.3f}, text {s['text_encode']:.3f}, "
                f"AdamW {s['optimizer']:.3f}, backward+rest {other:.3f}]; bare UNet fwd/bwd+AdamW "
                f"{r['bare_unet_step_s']:.3f} s; wall {r['wall_steps_per_s']:.3f} steps/s on this machine; "
                f"peak RSS {r['peak_rss_gb']:.2f} GB"
                + (f", peak VRAM {r['peak_vram_gb']:.2f} GB" if "peak_vram_gb" in r else ""),
                flush=True,
            )
    for kind in args.models:
        on = [r for r in rows if r["model"] == kind and r["cache"]]
        off = [r for r in rows if r["model"] == kind and not r["cache"]]
        if on and off:
            print(
                f"{kind}: caching on is {on[0]['steps_per_s'] / off[0]['steps_per_s']:.2f}x caching off; "
                f"cached step is {on[0]['step_s'] / on[0]['bare_unet_step_s']:.2f}x the bare UNet+AdamW step"
            )


if __name__ == "__main__":
    main()
