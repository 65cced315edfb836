#!/usr/bin/env python
"""Train the bundled demo base model (assets/demo-model) from procedurally generated, captioned scenes.

A small text-to-image model in the standard diffusers Stable Diffusion 1.x layout: AutoencoderKL (64 px ↔
16×16×4 latents), UNet2DConditionModel with cross-attention, a narrow CLIPTextModel with the real CLIP
tokenizer, and SD's noise schedule. It learns prompts such as "a large red circle on a blue background".

    .venv/bin/python scripts/train_demo_model.py              # ~25 min on 2 CPU cores
    .venv/bin/python scripts/train_demo_model.py --quick OUT  # seconds: a smoke run of every stage

Stages: (1) train the autoencoder so colours round-trip faithfully (a random VAE decodes everything to grey);
(2) encode the training scenes once with ``.mode()`` and cache the latents; (3) teach the text encoder the
captions' attributes (shape colour, background colour, shape, size) through linear read-out heads, so that which
colour belongs to the shape is in its states before the UNet reads them (from the diffusion loss alone the narrow
encoder blurred the two colours: 22 % of pictures right after 3,600 steps, against 41 % after 1,000 with the
heads); (4) train the UNet and the text encoder jointly on the cached latents, the read-out loss kept on a small
weight; a quarter of the captions start with random words, so trigger words in front do not derail it;
(5) save fp16 UNet/VAE weights (they load as fp32) and the fp32 text encoder, writing the folder atomically
(temp folder, then rename). The read-out heads are not saved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from app.engine.models.te_layout import prefix_text_encoder_keys  # noqa: E402
from app.engine.paths import DEMO_MODEL_DIR, TOKENIZER_DIR  # noqa: E402
from tools.demo.attributes import AttributeHeads, CaptionTable, pretrain_text  # noqa: E402
from tools.demo.scenes import COLOURS, STYLES, Scene, image_to_tensor_array, random_scene, render  # noqa: E402

SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
TEXT_WIDTH = 32  # the 49,408-row token table dominates the size: 32 wide = 6.3 MB in fp32


def build_models(seed: int):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(32, 64, 64),  # two downsamplers: 64 px → 16×16 latents
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )
    torch.manual_seed(seed + 1)
    # SD-like: attention at the two finer levels, a plain block at the coarsest; LoRA targets the attention.
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 128),  # narrow at 16×16, where nearly all the compute is
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=4,
        norm_num_groups=16,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=TEXT_WIDTH,
            intermediate_size=4 * TEXT_WIDTH,
            num_attention_heads=4,
            num_hidden_layers=3,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    return vae, unet, text_encoder


def vae_training_image(rng: random.Random) -> np.ndarray:
    """Scenes in any colour and any style variant, so the autoencoder carries more than the demo's palette."""
    scene = random_scene(rng, jitter=0.2)
    odd = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    kw = dict(rotation=rng.uniform(-0.5, 0.5) if rng.random() < 0.3 else 0.0)
    if rng.random() < 0.15:
        kw["fg_rgb"] = odd()
    if rng.random() < 0.15:
        kw["bg_rgb"] = odd()
    style = rng.choice((None, None) + STYLES)
    if style == "stripes":
        kw.update(stripe_period=rng.uniform(8, 24), stripe_angle=rng.uniform(0, 180))
    elif style == "outline":
        kw.update(outline_px=rng.uniform(1.5, 5))
    elif style == "pastel":
        kw.update(pastel=rng.uniform(0.3, 0.7))
    return image_to_tensor_array(render(scene, style=style, **kw))


def train_vae(vae, steps: int, batch: int, seed: int, log) -> float:
    rng = random.Random(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    vae.train()
    for step in range(steps):
        x = torch.from_numpy(np.stack([vae_training_image(rng) for _ in range(batch)]))
        post = vae.encode(x).latent_dist
        # Reconstruct from the mode (what the UNet is trained on), with a whisper of KL to keep latents tame.
        rec = vae.decode(post.mode()).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"vae step {step + 1}/{steps} loss {loss.item():.4f}")
    vae.eval()
    return vae_error(vae, seed)


@torch.no_grad()
def vae_error(vae, seed: int) -> float:
    """Held-out reconstruction error on plain demo scenes, in 0–255 units (a random VAE: ~90)."""
    test_rng = random.Random(seed + 999)
    x = torch.from_numpy(np.stack([image_to_tensor_array(render(random_scene(test_rng))) for _ in range(64)]))
    rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    return float((rec - x).abs().mean() * 127.5)


def make_dataset(n: int, seed: int) -> tuple[list[Scene], np.ndarray]:
    rng = random.Random(seed)
    scenes: list[Scene] = [random_scene(rng) for _ in range(n)]
    return scenes, np.stack([image_to_tensor_array(render(s)) for s in scenes])


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 128) -> torch.Tensor:
    out = [vae.encode(torch.from_numpy(images[i : i + batch])).latent_dist.mode() for i in range(0, len(images), batch)]
    return torch.cat(out)


def train_unet(
    unet,
    text_encoder,
    heads: AttributeHeads,
    latents,
    table: CaptionTable,
    *,
    steps,
    batch,
    seed,
    log,
    unet_lr: float,
    text_lr: float,
    attribute_weight: float,
    on_milestone=None,
    every: int = 0,
) -> None:
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler(**SCHEDULE)
    alphas = noise_sched.alphas_cumprod
    snr = alphas / (1 - alphas)
    params = [
        {"params": unet.parameters(), "lr": unet_lr},
        {"params": list(text_encoder.parameters()) + list(heads.parameters()), "lr": text_lr},
    ]
    opt = torch.optim.AdamW(params, weight_decay=1e-2)
    warm = max(1, min(100, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    )
    gen = torch.Generator().manual_seed(seed)
    unet.train()
    text_encoder.train()
    t0, smooth = time.time(), None
    for step in range(steps):
        pick = torch.randint(0, len(latents), (batch,), generator=gen)
        x0 = latents[pick]
        rows = table.of_image[pick].clone()
        rows[torch.rand(batch, generator=gen) < 0.1] = table.empty  # caption dropout teaches the unconditional branch
        # Offset noise: lets the model move a picture's overall colour far from the noise's mean.
        noise = torch.randn(x0.shape, generator=gen) + 0.1 * torch.randn((batch, 4, 1, 1), generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        xt = noise_sched.add_noise(x0, noise, t)
        cond = text_encoder(table.ids[rows])[0]
        pred = unet(xt, t, cond).sample
        # Min-SNR-5 weighting: faster convergence, no single noise level dominates.
        w = torch.clamp(snr[t], max=5.0) / snr[t]
        loss = (w * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()
        if attribute_weight:
            loss = loss + attribute_weight * heads.loss(cond, table.mask[rows], table.labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(unet.parameters()) + list(text_encoder.parameters()), 1.0)
        opt.step()
        sched.step()
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            rate = (step + 1) / (time.time() - t0)
            log(
                f"unet step {step + 1}/{steps} loss {smooth:.4f} "
                f"({rate:.2f} it/s, eta {(steps - step - 1) / rate / 60:.1f} min)"
            )
        if on_milestone is not None and every and (step + 1) % every == 0 and step + 1 < steps:
            unet.eval()
            text_encoder.eval()
            on_milestone(step + 1)
            unet.train()
            text_encoder.train()
    unet.eval()
    text_encoder.eval()


def demo_scheduler():
    """The sampler the saved model uses by default: DPM++ 2M, the app's default, on SD's noise schedule.

    Not SD's PNDM (PLMS): its 4th-order steps overshoot on this small model, so at 20 steps it draws shifted
    colours (14 % of pictures right; 55 % at 50 steps, 98 % at 100) against 93–98 % for DPM++ 2M, Euler or UniPC
    at 20 (bench/demo_model_quality.py). ``clip_sample`` is written as False so
    that a DDIM built from this config does not clip the latents (diffusers' default for DDIM would).
    """
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, steps_offset=1)
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False)
    return scheduler


def save_atomically(pipe, out: Path, card: str, facts: dict) -> None:
    """Write to a temp folder beside ``out``, then swap it in, so ``out`` is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    # fp16 UNet/VAE halve the download; diffusers loads them back as fp32. The text encoder stays fp32 because
    # transformers would keep an fp16 checkpoint in fp16.
    pipe.unet.to(torch.float16)
    pipe.vae.to(torch.float16)
    pipe.save_pretrained(tmp, safe_serialization=True)
    prefix_text_encoder_keys(tmp)  # text_model.* keys: transformers 4.x would load 5.x's flat names as random weights
    # The slow tokenizer's vocab/merges files are 1.5 MB; the fast tokenizer.json would be 3.6 MB of the 25 MB.
    shutil.rmtree(tmp / "tokenizer")
    shutil.copytree(TOKENIZER_DIR, tmp / "tokenizer")
    pipe.unet.to(torch.float32)
    pipe.vae.to(torch.float32)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    (tmp / "build.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


@torch.no_grad()
def quick_check(pipe, seed: int, n: int) -> float:
    """Share of ``n`` random prompts whose picture shows the asked background and shape colours (the saved
    model's own sampler, DPM++ 2M, 20 steps, CFG 7.5)."""
    from tools.demo.stats import scene_colours

    rng = random.Random(seed)
    hits = 0
    for i in range(n):
        s = random_scene(rng, jitter=0.0)
        img = pipe(s.caption(), num_inference_steps=20, generator=torch.Generator().manual_seed(i)).images[0]
        got = scene_colours(img)
        hits += got.background == s.background and got.shape == s.colour
    return hits / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(DEMO_MODEL_DIR), help="output folder (default assets/demo-model)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the build machine has 2 cores)")
    ap.add_argument("--vae-steps", type=int, default=900)
    ap.add_argument("--unet-steps", type=int, default=4000)
    ap.add_argument("--save-every", type=int, default=300, help="also write the model every N UNet steps (0: never)")
    ap.add_argument("--check", type=int, default=0, help="after training, try N random prompts and print the hit rate")
    ap.add_argument(
        "--text-steps",
        type=int,
        default=400,
        help="attribute pre-training steps for the text encoder before the UNet stage",
    )
    ap.add_argument(
        "--attribute-weight",
        type=float,
        default=0.1,
        help="weight of the text encoder's attribute read-out loss during the UNet stage (0: off)",
    )
    ap.add_argument(
        "--prefixed-share",
        type=float,
        default=0.25,
        help="share of training captions that start with random words (so trigger words do not derail it)",
    )
    ap.add_argument("--unet-lr", type=float, default=5e-4)
    ap.add_argument("--text-lr", type=float, default=5e-4)
    ap.add_argument("--images", type=int, default=4000, help="distinct training scenes for the UNet")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--vae-tune-steps",
        type=int,
        default=300,
        help="then fine-tune the autoencoder on pastel/striped/outlined scenes with plain scenes' latents anchored "
        "(tools/demo/vae_tune.py; 0: skip)",
    )
    ap.add_argument("--vae-tune-lr", type=float, default=1e-3, help="peak learning rate of the autoencoder tuning")
    ap.add_argument("--vae-tune-anchor", type=float, default=1.0, help="weight of the plain-latent anchor loss")
    ap.add_argument("--quick", action="store_true", help="a few steps of every stage (smoke test)")
    ap.add_argument(
        "--resume-from",
        default="",
        metavar="MODEL_DIR",
        help="continue training the UNet and text encoder of an earlier build (its VAE and latent scale "
        "are kept; --vae-steps is ignored)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.vae_steps, args.unet_steps, args.images, args.batch, args.save_every = 3, 4, 64, 4, 2
        args.text_steps, args.vae_tune_steps = 3, 2
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    start = time.time()
    log = lambda msg: print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)  # noqa: E731

    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    previous: dict = {}
    if args.resume_from:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        src = Path(args.resume_from)
        vae = AutoencoderKL.from_pretrained(src / "vae", dtype=torch.float32)
        unet = UNet2DConditionModel.from_pretrained(src / "unet", dtype=torch.float32)
        text_encoder = CLIPTextModel.from_pretrained(src / "text_encoder", dtype=torch.float32)
        if (src / "build.json").exists():
            previous = json.loads((src / "build.json").read_text(encoding="utf-8"))
        log(f"resuming from {src}")
    else:
        vae, unet, text_encoder = build_models(args.seed)
    log(
        f"params: unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M, vae "
        f"{sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M, "
        f"text {sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f} M"
    )

    if args.resume_from:
        vae.eval()
        vae_err, args.vae_steps = vae_error(vae, args.seed), 0
    else:
        vae_err = train_vae(vae, args.vae_steps, 8 if not args.quick else 2, args.seed, log)
    tuned: dict = {}
    if args.vae_tune_steps:
        from tools.demo.vae_tune import tune_vae

        tuned = tune_vae(
            vae,
            steps=args.vae_tune_steps,
            lr=args.vae_tune_lr,
            anchor=args.vae_tune_anchor,
            seed=args.seed + 11,
            log=log,
        )
        vae_err = vae_error(vae, args.seed)
        log(f"vae tuned: {tuned}")
    t_vae = time.time() - start
    log(f"vae done: held-out mean abs error {vae_err:.1f}/255")

    # Without a UNet stage the latents only feed a fresh build's scale; a resumed build keeps its scale.
    scenes, images = make_dataset(args.images if args.unet_steps else args.batch, args.seed + 1)
    latents = encode_latents(vae, images)
    if not args.resume_from:  # a resumed UNet was trained on the earlier scale: keep it
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    scale = float(vae.config.scaling_factor)
    latents = latents * scale
    log(f"cached {len(latents)} latents {tuple(latents.shape[1:])}, scaling factor {scale:.4f}")

    scheduler = demo_scheduler()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    facts = dict(
        seed=args.seed,
        vae_steps=args.vae_steps,
        text_steps=args.text_steps if args.unet_steps else 0,
        unet_steps=args.unet_steps,
        unet_lr=args.unet_lr,
        text_lr=args.text_lr,
        attribute_weight=args.attribute_weight,
        prefixed_share=args.prefixed_share,
        images=args.images,
        batch=args.batch,
        threads=args.threads,
        vae_mean_abs_error_255=round(vae_err, 2),
        vae_tune_steps=args.vae_tune_steps,
        vae_tune_anchor=args.vae_tune_anchor,
        vae_tune_lr=args.vae_tune_lr,
        **{f"vae_{k}": v for k, v in tuned.items()},
        colours=list(COLOURS),
        torch=torch.__version__,
    )
    if previous:
        facts["continues"] = previous

    def milestone(step: int) -> None:
        # A usable model lands early; a later, better one replaces it atomically.
        save_atomically(pipe, Path(args.out), *model_card({**facts, "unet_steps_done": step}))
        log(f"saved the model after {step} UNet steps")

    # A resumed stage draws different batches and noise than the stage it continues.
    table = CaptionTable.build(tokenizer, scenes, seed=args.seed + 5, prefixed_share=args.prefixed_share)
    heads = AttributeHeads(text_encoder.config.hidden_size)
    if args.unet_steps:  # 0: keep the (resumed) UNet and text encoder as they are
        pretrain_text(text_encoder, heads, table, steps=args.text_steps, seed=args.seed + 4, log=log)
        train_unet(
            unet,
            text_encoder,
            heads,
            latents,
            table,
            steps=args.unet_steps,
            batch=args.batch,
            seed=args.seed + 2 + (1000 if args.resume_from else 0),
            log=log,
            unet_lr=args.unet_lr,
            text_lr=args.text_lr,
            attribute_weight=args.attribute_weight,
            on_milestone=milestone,
            every=args.save_every,
        )
    facts.update(
        minutes_vae=round(t_vae / 60, 1),
        minutes_unet=round((time.time() - start - t_vae) / 60, 1),
        minutes_total=round((time.time() - start) / 60, 1),
    )
    if args.check:
        facts["check_hit_rate"] = quick_check(pipe, args.seed + 3, args.check)
        log(f"check: {facts['check_hit_rate']:.0%} of {args.check} prompts show both asked colours")
    total = time.time() - start
    save_atomically(pipe, Path(args.out), *model_card(facts))
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    log(f"wrote {args.out} ({size / 1e6:.1f} MB) in {total / 60:.1f} min")
    return 0


def model_card(facts: dict) -> tuple[str, dict]:
    return (
        "# StyleShelf demo model\n\nA small text-to-image model in the diffusers Stable Diffusion 1.x layout, trained "
        "from scratch on procedurally drawn scenes by `scripts/train_demo_model.py` (offline, seeds fixed). It draws "
        "prompts of the form `a [small|large] <colour> <shape> on a <colour> background` at 64×64, with colours "
        f"{', '.join(COLOURS)} and shapes circle, square, triangle, star; other words in front of the scene (trigger "
        "words) are fine. Its default sampler is DPM++ 2M (Euler, UniPC and DDIM work too; PNDM/PLMS needs "
        "about 100 steps). `check_hit_rate`: the share of random prompts whose picture shows both asked colours "
        "(DPM++ 2M, 20 steps, CFG 7.5); `bench/demo_model_quality.py` measures it properly.\n\n"
        "Build facts:\n\n```json\n"
        f"{json.dumps(facts, indent=2)}\n```\n",
        facts,
    )


if __name__ == "__main__":
    raise SystemExit(main())
