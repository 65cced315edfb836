"""``train(config, on_event=, cancel=)``: the LoRA training run from folder to adapter file.

Order of work: ``setup.set_up`` (scan the dataset → load the base → attach LoRA → encode and cache
latents/text) → ``_Run._train``, the loop (per step only the UNet forward/backward and the optimiser) →
``_Run._finish`` (checkpoint, validate base vs adapter, final samples, write the adapter with the
``finish`` module). Runs under HF Accelerate, so ``torchrun``/``accelerate launch`` spread it over GPUs or
CPU processes; only the main rank writes files or reports events.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from app.engine.errors import Cancelled, UserError
from app.engine.events import (
    NEVER_CANCEL,
    CancelToken,
    CheckpointSaved,
    Error,
    EventCallback,
    Level,
    Log,
    Progress,
    SampleReady,
    TrainFinished,
    TrainSummary,
    ignore_event,
)
from app.engine.rate import RateTracker
from app.engine.train.buckets import BatchPlan
from app.engine.train.cache import batch_inputs
from app.engine.train.checkpoints import clear_checkpoints, restore, save_checkpoint
from app.engine.train.config import TrainConfig
from app.engine.train.finish import (
    nothing_saved,
    rank_checksums,
    run_summary,
    write_run_adapter,
)
from app.engine.train.lora import lora_state_dict, without_magnitude_decay
from app.engine.train.model import TrainingBase
from app.engine.train.objective import denoising_loss, step_generator
from app.engine.train.optimizers import make_optimizer
from app.engine.train.output import smoothed_loss
from app.engine.train.preflight import is_out_of_memory, out_of_memory_error
from app.engine.train.preservation import preserved_denoising_loss
from app.engine.train.run_state import latest_checkpoint
from app.engine.train.sampling import (
    SampleRenderer,
    best_sample,
    prompts_from_captions,
    sample_steps_of,
)
from app.engine.train.setup import Setup, offload_idle_models, set_up
from app.engine.train.strength import partial_strength_loss
from app.engine.train.validation import adapter_conditioning, base_and_adapter_loss


@dataclass
class TrainResult:
    adapter: Path | None
    steps: int
    cancelled: bool
    summary: TrainSummary = field(default_factory=TrainSummary)
    checkpoint: Path | None = None


@dataclass
class LoopEnd:
    """Where the loop stopped, and what the end of the run needs from it."""

    step: int
    start: int  # the step it resumed at (0: a fresh run)
    cancelled: bool
    losses: list[float]  # every step's loss, a resumed run's earlier ones included
    tracker: RateTracker
    last_samples: list[Path]  # the newest sample round (the thumbnail is chosen from it)
    optimizer: Any
    lr_scheduler: Any


def train(
    config: TrainConfig, *, on_event: EventCallback = ignore_event, cancel: CancelToken = NEVER_CANCEL
) -> TrainResult:
    config.check()
    accelerator = _accelerator(config)
    emit = on_event if accelerator.is_main_process else ignore_event
    run = _Run(config, accelerator, emit, cancel)
    threads = torch.get_num_threads()
    if config.cpu_threads and accelerator.device.type == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        return run.execute()
    except Cancelled:
        # Stopped before the first step: nothing new was written. A resumed run's checkpoint is still there.
        emit(nothing_saved(config, latest_checkpoint(config.checkpoint_dir()) if config.resume else None))
        return TrainResult(None, 0, True)
    except UserError as err:
        emit(Error(message=str(err), details=err.details))
        raise
    except Exception as err:
        if is_out_of_memory(err):
            user = out_of_memory_error(
                batch_size=config.batch_size,
                resolution=config.resolution,
                rank=config.rank,
                checkpointing=config.gradient_checkpointing,
            )
            emit(Error(message=str(user), details=user.details))
            raise user from None
        emit(Error(message=f"Training failed: {type(err).__name__}: {err}"))
        raise
    finally:
        torch.set_num_threads(threads)


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator

    precision = "no"
    if torch.cuda.is_available() and config.mixed_precision != "no":
        precision = config.mixed_precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # cpu=True is what makes Accelerate treat torchrun's ranks on a GPU-less machine as MULTI_CPU (gloo);
    # without it every rank silently trains alone and all of them write files.
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


class _Run:
    def __init__(self, config: TrainConfig, accelerator, emit: EventCallback, cancel: CancelToken):
        self.cfg = config
        self.acc = accelerator
        self.emit = emit
        self.cancel = cancel
        self.device = accelerator.device
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            accelerator.mixed_precision, torch.float32
        )
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.out = config.resolved_out()
        self.started_at = time.time()
        self.sampler: SampleRenderer | None = None  # made at the first sample round

    def execute(self) -> TrainResult:
        setup = set_up(self.cfg, self.acc, dtype=self.weight_dtype, emit=self.emit, cancel=self.cancel)
        return self._finish(setup, self._train(setup))

    # ------------------------------------------------------------------ the loop
    def _train(self, setup: Setup) -> LoopEnd:
        from diffusers.optimization import get_scheduler

        cfg, acc, base = self.cfg, self.acc, setup.base
        groups = [{"params": setup.unet_params, "lr": cfg.learning_rate}]
        groups += [{"params": p, "lr": cfg.text_encoder_lr} for p in setup.te_params]
        groups = without_magnitude_decay(groups, [base.unet, *(base.text_encoders if cfg.train_text_encoder else [])])
        optimizer = make_optimizer(cfg.optimizer, groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        schedule = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}[cfg.lr_schedule]
        lr_scheduler = get_scheduler(
            schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps
        )
        start, history = self._resume(base, optimizer, lr_scheduler)
        if start == 0 and acc.is_main_process:
            # A fresh run replaces the adapter; its predecessor's checkpoints (maybe at higher steps)
            # would otherwise outrank the new ones when pruning and resuming.
            stale = clear_checkpoints(cfg.checkpoint_dir())
            if stale:
                self.log(f"Removed {stale} checkpoint(s) of an earlier run of {self.out.name}.")
        trained_tes = base.text_encoders if cfg.train_text_encoder else []
        # Models: DDP wrapping (several processes) or just device placement (one). The optimiser goes
        # through Accelerate too, so fp16 runs get loss scaling, unscaled before clipping. The LR scheduler
        # stays plain: Accelerate would step a prepared one once per process.
        *models, optimizer = acc.prepare(base.unet, *trained_tes, optimizer)
        unet, tes = models[0], list(models[1:])
        unet.train()
        for te in tes:
            te.train()
        plan = BatchPlan([s.bucket for s in setup.data.samples], cfg.batch_size, cfg.seed)
        params = setup.params
        kind = {"lora": "LoRA", "dora": "DoRA", "lokr": "LoKr"}[cfg.network]
        self.log(
            f"Training {sum(p.numel() for p in params):,} {kind} parameters for {cfg.steps} steps "
            f"({plan.batches_per_epoch} batches per epoch, {self.world} process(es), {self.device.type})"
        )
        tracker = RateTracker()
        losses = history  # a resumed run keeps the curve it had
        smoothed = smoothed_loss(losses)
        step = start
        cancelled = False
        last_samples: list[Path] = []
        sample_at = sample_steps_of(cfg.steps, every=cfg.sample_every, count=cfg.sample_count)
        if start:  # the bar shows the true position before the first resumed step
            self.emit(Progress(step=start, total=cfg.steps))
        while step < cfg.steps:
            if self._cancel_requested():
                cancelled = True
                break
            loss_value = 0.0
            for micro in range(cfg.gradient_accumulation):
                n = (step * cfg.gradient_accumulation + micro) * self.world + self.rank
                sync = micro == cfg.gradient_accumulation - 1
                contexts = [contextlib.nullcontext()] if sync else [acc.no_sync(m) for m in [unet, *tes]]
                with contextlib.ExitStack() as stack:
                    for c in contexts:
                        stack.enter_context(c)
                    with acc.autocast():
                        loss = self._micro_step(setup, unet, tes, plan.batch(n), n)
                    acc.backward(loss / cfg.gradient_accumulation)
                loss_value += float(loss.detach()) / cfg.gradient_accumulation
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss_value)
            smoothed = loss_value if smoothed is None else 0.9 * smoothed + 0.1 * loss_value
            rate = tracker.tick()
            self.emit(
                Progress(
                    step=step,
                    total=cfg.steps,
                    loss=loss_value,
                    smoothed_loss=smoothed,
                    it_per_s=rate,
                    eta_s=(cfg.steps - step) / rate if rate else None,
                )
            )
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                self._checkpoint(base, step, optimizer, lr_scheduler, losses)
            if step in sample_at and not self._cancel_requested():
                last_samples = self._samples(setup, step) or last_samples
        return LoopEnd(
            step=step,
            start=start,
            cancelled=cancelled,
            losses=losses,
            tracker=tracker,
            last_samples=last_samples,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
        )

    def _micro_step(self, setup: Setup, unet, tes, indices: list[int], n: int) -> torch.Tensor:
        cfg, scheduler = self.cfg, setup.noise_scheduler
        gen = step_generator(cfg.seed, n)  # all randomness of micro-batch n: replayable on resume and per rank
        latents, hidden, pooled, time_ids = batch_inputs(
            setup.base,
            setup.data,
            indices,
            gen,
            random_crop=cfg.random_crop,
            caption_dropout=cfg.caption_dropout,
            text_encoders=tes,
            device=self.device,
            dtype=self.weight_dtype,
        )
        noise = torch.randn(latents.shape, generator=gen)
        if cfg.noise_offset:
            noise += cfg.noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=gen)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen)
        batch = dict(  # what every objective below gets for this micro-batch
            latents=latents,
            noise=noise.to(self.device, latents.dtype),
            timesteps=timesteps.to(self.device),
            hidden=hidden,
            pooled=pooled,
            time_ids=time_ids,
            prediction_type=setup.prediction,
            snr_gamma=cfg.min_snr_gamma,
        )
        # Drawn after the noise and timesteps, so runs without it keep their random streams.
        if cfg.partial_strength > 0 and torch.rand((), generator=gen).item() < cfg.partial_strength:
            return partial_strength_loss(unet, scheduler, gen, **batch)
        if cfg.preserve_unconditional > 0:
            return preserved_denoising_loss(
                setup.base,
                setup.data,
                unet,
                tes,
                scheduler,
                weight=cfg.preserve_unconditional,
                device=self.device,
                dtype=self.weight_dtype,
                **batch,
            )
        return denoising_loss(unet, scheduler, **batch)

    def _stop_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()

    def _cancel_requested(self) -> bool:
        flag = self.cancel.is_set()
        if self.world > 1:  # every rank must stop at the same step, or the others hang in all-reduce
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            flag = bool(self.acc.reduce(t, reduction="sum").item() > 0)
        return flag

    # ------------------------------------------------------------------ checkpoints, samples, end
    def _lora_states(self, base: TrainingBase) -> dict[str, dict[str, torch.Tensor]]:
        states = {"unet": lora_state_dict(base.unet)}
        if self.cfg.train_text_encoder:
            for i, te in enumerate(base.text_encoders):
                states[f"text_encoder{'' if i == 0 else '_2'}"] = lora_state_dict(te)
        return states

    def _checkpoint(self, base: TrainingBase, step: int, optimizer, lr_scheduler, losses: list[float]) -> Path | None:
        path = None
        if self.acc.is_main_process:
            flat = {f"{part}.{k}": v for part, sd in self._lora_states(base).items() for k, v in sd.items()}
            path = save_checkpoint(
                self.cfg.checkpoint_dir(),
                step=step,
                lora=flat,
                optimizer=optimizer,
                scheduler=lr_scheduler,
                keep=self.cfg.keep_checkpoints,
                extra={
                    "config": self.cfg.to_dict(),
                    "total_steps": self.cfg.steps,
                    "loss_history": [round(x, 6) for x in losses[:step]],
                },
            )
            self.emit(CheckpointSaved(step=step, path=str(path)))
        self.acc.wait_for_everyone()
        return path

    def _resume(self, base: TrainingBase, optimizer, lr_scheduler) -> tuple[int, list[float]]:
        """The step to start at and the losses of the steps before it (0 and none for a fresh run)."""
        cfg = self.cfg
        if not cfg.resume:
            return 0, []
        modules = {"unet": base.unet}
        if cfg.train_text_encoder:
            for i, te in enumerate(base.text_encoders):
                modules[f"text_encoder{'' if i == 0 else '_2'}"] = te
        ckpt = restore(cfg.checkpoint_dir(), cfg, modules=modules, optimizer=optimizer, scheduler=lr_scheduler)
        if ckpt is None:
            self.log(f"No checkpoint in {cfg.checkpoint_dir()}: starting from step 0.", Level.WARNING)
            return 0, []
        if ckpt.rng_state is not None:
            torch.random.set_rng_state(ckpt.rng_state)  # torch's global RNG as the interrupted run left it
        if ckpt.step >= cfg.steps:
            self.log(
                f"Checkpoint {ckpt.path.name} is the run's last step: finishing the run (validation, samples, adapter)."
            )
        else:
            self.log(f"Resumed from {ckpt.path.name} (step {ckpt.step}).")
        return ckpt.step, ckpt.loss_history

    def _samples(self, setup: Setup, step: int) -> list[Path]:
        paths: list[Path] = []
        if self.acc.is_main_process:
            base, cfg = setup.base, self.cfg
            moved = self.device.type == "cuda" and base.vae.device.type != "cuda"
            if moved:
                base.pipe.to(self.device)
            prompts = prompts_from_captions([i.caption for i in setup.items], list(cfg.sample_prompts), cfg.trigger)
            if self.sampler is None:
                self.sampler = SampleRenderer(
                    base.pipe,
                    folder=cfg.samples_dir(),
                    size=cfg.sample_resolution or cfg.resolution,
                    steps=cfg.sample_steps,
                    seed=cfg.seed,
                    device=self.device,
                    lora_modules=[base.unet, *(base.text_encoders if cfg.train_text_encoder else [])],
                )
            self.log(f"Drawing samples at step {step}…")
            paths = self.sampler.render(prompts, step, cancelled=self.cancel.is_set)
            prompts = prompts[: len(paths)]
            if moved:
                offload_idle_models(base, keep_text_encoders=cfg.train_text_encoder)
            self.emit(SampleReady(step=step, paths=[str(p) for p in paths], prompts=prompts))
        self.acc.wait_for_everyone()
        return paths

    def _finish(self, setup: Setup, end: LoopEnd) -> TrainResult:
        cfg, acc, base, step = self.cfg, self.acc, setup.base, end.step
        if step == 0:  # cancelled before the first step: an untrained adapter would only be the base
            self.emit(nothing_saved(cfg, None))
            return TrainResult(None, 0, True)
        # The checkpoint first: it is what Resume needs. A resumed run stopped before its first new step
        # already has one at this step.
        checkpoint = (
            self._checkpoint(base, step, end.optimizer, end.lr_scheduler, end.losses) if step > end.start else None
        )
        checkpoint = checkpoint or (latest_checkpoint(cfg.checkpoint_dir()) if acc.is_main_process else None)
        base_loss = adapter_loss = None
        if end.cancelled:
            # Cancel means stop now: validation and fresh samples are left to the resumed run.
            self.log("Stopped: validation and final samples are left for Resume.")
        else:
            self.log("Validating: denoising loss of the base vs the adapter…")
            vset = setup.vset
            if cfg.train_text_encoder:
                vset.adapter_hidden, vset.adapter_pooled = adapter_conditioning(base, vset)
            base_loss, adapter_loss = base_and_adapter_loss(
                acc.unwrap_model(base.unet),
                setup.noise_scheduler,
                vset,
                prediction_type=setup.prediction,
                seed=cfg.seed,
                dtype=self.weight_dtype,
            )
            sampled = sample_steps_of(cfg.steps, every=cfg.sample_every, count=cfg.sample_count)
            if step not in {s for s in sampled if s > end.start} and cfg.thumbnail:
                end.last_samples = self._samples(setup, step)  # the final state's picture for the shelf
        states = self._lora_states(base)
        summary = run_summary(
            setup, end, total=cfg.steps, losses=(base_loss, adapter_loss), checksums=rank_checksums(states, self.world)
        )
        summary.checkpoint = str(checkpoint or "")
        adapter = None
        if acc.is_main_process:
            thumb = best_sample(end.last_samples) if cfg.thumbnail else None
            summary.thumbnail_sample = str(thumb or "")
            summary.saved = ["adapter"] + (["checkpoint"] if checkpoint else [])
            adapter = write_run_adapter(
                cfg, self.out, setup, states, step=step, sample=thumb, summary=summary, started_at=self.started_at
            )
            if base_loss is not None:
                self.log(
                    f"Validation loss: base {base_loss:.4f} → adapter {adapter_loss:.4f} "
                    f"({summary.validation_change:+.1%})"
                )
            self.emit(TrainFinished(output=str(adapter), cancelled=end.cancelled, summary=summary))
        acc.wait_for_everyone()
        return TrainResult(adapter, step, end.cancelled, summary, checkpoint)

    def log(self, message: str, level: Level = Level.INFO) -> None:
        self.emit(Log(message=message, level=level))
