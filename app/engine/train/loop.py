"""``train(config, on_event=, cancel=)``: the LoRA training run from folder to adapter file.

Order of work: scan the dataset → load the base → encode and cache latents/text (main rank first) →
attach LoRA → optimise (per step only the UNet forward/backward and the optimiser) → validate base vs
adapter → write the adapter. Runs under HF Accelerate, so ``torchrun``/``accelerate launch`` spread it
over GPUs or CPU processes; only the main rank writes files or reports events.
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
    CancelToken,
    CheckpointSaved,
    Error,
    EventCallback,
    Finished,
    Log,
    Progress,
    SampleReady,
    ignore_event,
    NEVER_CANCEL,
)
from app.engine.rate import RateTracker
from app.engine.train.buckets import BatchPlan
from app.engine.train.cache import Prepared, batch_inputs, plan_samples, prepare
from app.engine.train.checkpoints import clear_checkpoints, restore, save_checkpoint
from app.engine.train.run_state import checkpoint_history, checkpoint_step, latest_checkpoint
from app.engine.train.config import TrainConfig
from app.engine.train.dataset import DatasetItem, hold_out, scan_dataset
from app.engine.train.lora import TEXT_TARGETS, UNET_TARGETS, attach_lora, lora_state_dict, set_lora_enabled
from app.engine.train.model import load_training_base
from app.engine.train.preflight import (
    estimate_peak_bytes, is_out_of_memory, out_of_memory_error, preflight_warning,
)
from app.engine.train.output import (
    RunFacts, adapter_metadata, images_per_folder, nothing_saved, run_summary, smoothed_loss,
    weights_checksum, write_adapter,
)
from app.engine.train.optimizers import make_optimizer
from app.engine.train.sampling import (
    SampleRenderer, best_sample, prompts_from_captions, sample_steps_of, thumbnail_of, adapter_half,
)
from app.engine.train.objective import denoising_loss, step_generator
from app.engine.train.validation import (
    ValidationSet, adapter_conditioning, base_and_adapter_loss, build_validation_set,
)

@dataclass
class TrainResult:
    adapter: Path | None
    steps: int
    cancelled: bool
    summary: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None


def train(config: TrainConfig, *, on_event: EventCallback = ignore_event,
          cancel: CancelToken = NEVER_CANCEL) -> TrainResult:
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
            user = out_of_memory_error(batch_size=config.batch_size, resolution=config.resolution, rank=config.rank,
                                       checkpointing=config.gradient_checkpointing)
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
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision,
                                                                              torch.float32)
        self.world = accelerator.num_processes
        self.rank = accelerator.process_index
        self.out = config.resolved_out()
        self.history: list[float] = []  # losses of the steps before a resume, from the checkpoint
        self._losses: list[float] = []  # every step's loss so far (what a checkpoint keeps)
        self.sampler: SampleRenderer | None = None

    # ------------------------------------------------------------------ setup
    def execute(self) -> TrainResult:
        cfg = self.cfg
        self.started_at = time.time()
        items, val_items, report = self._scan()
        self._stop_if_cancelled()
        self.log(f"Loading base model {Path(cfg.base).name}…")
        base = load_training_base(cfg.base, dtype=self.weight_dtype, device=self.device)
        self.base = base
        self._stop_if_cancelled()  # a Cancel while the model loaded: stop now, not after caching
        self.prediction = (base.noise_scheduler.config.get("prediction_type", "epsilon")
                           if cfg.prediction_type == "auto" else cfg.prediction_type)
        from diffusers import DDPMScheduler

        self.scheduler = DDPMScheduler.from_config(base.noise_scheduler.config, prediction_type=self.prediction)
        base.unet.to(self.device)
        base.vae.to(self.device)
        for te in base.text_encoders:
            te.to(self.device)
        self.unet_params = attach_lora(base.unet, rank=cfg.rank, alpha=cfg.resolved_alpha(),
                                       targets=UNET_TARGETS[cfg.lora_targets], seed=cfg.seed)
        self.te_params = []
        if cfg.train_text_encoder:
            for i, te in enumerate(base.text_encoders):
                self.te_params.append(attach_lora(te, rank=cfg.rank, alpha=cfg.resolved_alpha(),
                                                  targets=TEXT_TARGETS, seed=cfg.seed + 1 + i))
        self._preflight()
        data, vset = self._prepare(items, val_items)
        self.data = data
        if cfg.gradient_checkpointing:
            base.unet.enable_gradient_checkpointing()
            for te in base.text_encoders if cfg.train_text_encoder else []:
                # transformers 5 renamed it; the old name still works there but warns.
                (getattr(te, "activation_checkpointing_enable", None) or te.gradient_checkpointing_enable)()
        if self.device.type == "cuda" and cfg.cache_latents:
            base.vae.to("cpu")  # not needed per step; back on the GPU only for samples
            if not cfg.train_text_encoder:
                for te in base.text_encoders:
                    te.to("cpu")
            torch.cuda.empty_cache()
        return self._train(report, data, vset)

    def _scan(self):
        cfg = self.cfg
        self.log(f"Scanning {cfg.dataset_dir}…")
        report = scan_dataset(cfg.dataset_dir, trigger=cfg.trigger, min_side=cfg.min_image_side,
                              max_pixels=cfg.max_image_pixels, filename_captions=cfg.filename_captions)
        for skipped in report.skipped:
            self.log(f"Skipped {skipped.path.name}: {skipped.reason}", "warning")
        report.require_usable()
        items = list(report.items)
        val_items: list[DatasetItem] = []
        if cfg.validation_images:
            if len(items) <= cfg.validation_images:
                raise UserError(f"Only {len(items)} usable image(s): too few to hold {cfg.validation_images} out "
                                "for validation.", hint="Set validation_images to 0 (validate on training images).")
            items, val_items = hold_out(items, cfg.validation_images, seed=cfg.seed)
        self.log(f"{len(items)} training image(s), {len(report.skipped)} skipped"
                 + (f", {len(val_items)} held out for validation" if val_items else ""))
        self.report = report
        self.items = items
        return items, val_items, report

    def _preflight(self) -> None:
        if self.device.type != "cuda":
            return
        cfg, base = self.cfg, self.base
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        estimate = estimate_peak_bytes(
            unet_params=count(base.unet), other_params_on_device=count(base.vae) + sum(map(count, base.text_encoders)),
            lora_params=sum(p.numel() for p in self.unet_params) + sum(p.numel() for g in self.te_params for p in g),
            weight_bytes=torch.finfo(self.weight_dtype).bits // 8, batch_size=cfg.batch_size,
            resolution=cfg.resolution, gradient_checkpointing=cfg.gradient_checkpointing,
        )
        self.log(f"Estimated peak GPU memory: {estimate / 2**30:.1f} GiB")
        warning = preflight_warning(estimate, self.device)
        if warning:
            self.log(warning, "warning")

    def _prepare(self, items, val_items) -> tuple[Prepared, ValidationSet]:
        cfg, base = self.cfg, self.base
        samples, captions = plan_samples(items, resolution=cfg.resolution, step=cfg.bucket_step,
                                         max_upscale=cfg.max_upscale, flip=cfg.flip)
        if cfg.caption_dropout > 0 and "" not in captions:
            captions.append("")  # what a dropped caption becomes: the prompt of guidance's unconditional half
        started = time.monotonic()

        def progress(done, total):
            self.emit(Progress(step=done, total=total, phase="cache"))

        cancelled = self.cancel.is_set
        for te in base.text_encoders:  # cached text is the base encoders' output, whatever LoRA they carry
            set_lora_enabled(te, False)
        vae_dtype = base.vae.dtype
        base.vae.to(dtype=torch.float32)  # a half-precision VAE can overflow when encoding (SDXL's gives NaN)
        # Main rank first: it fills the disk cache, the others then read it instead of encoding again.
        with self.acc.main_process_first(), torch.no_grad():
            data = prepare(base, items, samples, captions, cache_latents=cfg.cache_latents,
                           cache_text=cfg.cache_latents and not cfg.train_text_encoder, background=cfg.background,
                           max_pixels=cfg.max_image_pixels, device=self.device, progress=progress,
                           cancelled=cancelled)
            if self.cancel.is_set():
                raise Cancelled()
            vset = build_validation_set(base, val_items or items[:4], cfg, held_out=bool(val_items),
                                        device=self.device)
        base.vae.to(dtype=vae_dtype)
        for te in base.text_encoders:
            set_lora_enabled(te, True)
        if cfg.cache_latents:
            self.log(f"Cached {len(samples)} latents ({data.cache_hits} reused from disk) in "
                     f"{time.monotonic() - started:.1f} s")
        return data, vset

    # ------------------------------------------------------------------ the loop
    def _train(self, report, data: Prepared, vset: ValidationSet) -> TrainResult:
        from diffusers.optimization import get_scheduler

        cfg, acc, base = self.cfg, self.acc, self.base
        groups = [{"params": self.unet_params, "lr": cfg.learning_rate}]
        groups += [{"params": p, "lr": cfg.text_encoder_lr} for p in self.te_params]
        optimizer = make_optimizer(cfg.optimizer, groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        schedule = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}[cfg.lr_schedule]
        lr_scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=cfg.warmup_steps,
                                     num_training_steps=cfg.steps)
        start = self._resume(optimizer, lr_scheduler)
        if start == 0 and self.acc.is_main_process:
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
        plan = BatchPlan([s.bucket for s in data.samples], cfg.batch_size, cfg.seed)
        params = self.unet_params + [p for g in self.te_params for p in g]
        self.log(f"Training {sum(p.numel() for p in params):,} LoRA parameters for {cfg.steps} steps "
                 f"({plan.batches_per_epoch} batches per epoch, {self.world} process(es), {self.device.type})")
        tracker = RateTracker()
        losses: list[float] = list(self.history)  # a resumed run keeps the curve it had
        self._losses = losses
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
                        loss = self._micro_step(unet, tes, data, plan.batch(n), n)
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
            self.emit(Progress(step=step, total=cfg.steps, loss=loss_value, smoothed_loss=smoothed, it_per_s=rate,
                               eta_s=(cfg.steps - step) / rate if rate else None))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                self._checkpoint(step, optimizer, lr_scheduler)
            if step in sample_at and not self._cancel_requested():
                last_samples = self._samples(step) or last_samples
        return self._finish(step, start, cancelled, optimizer, lr_scheduler, vset, losses, tracker, last_samples)

    def _micro_step(self, unet, tes, data: Prepared, indices: list[int], n: int) -> torch.Tensor:
        cfg = self.cfg
        gen = step_generator(cfg.seed, n)  # all randomness of micro-batch n: replayable on resume and per rank
        latents, hidden, pooled, time_ids = batch_inputs(self.base, data, indices, gen, random_crop=cfg.random_crop,
                                                         caption_dropout=cfg.caption_dropout, text_encoders=tes,
                                                         device=self.device, dtype=self.weight_dtype)
        noise = torch.randn(latents.shape, generator=gen)
        if cfg.noise_offset:
            noise += cfg.noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=gen)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen)
        return denoising_loss(unet, self.scheduler, latents=latents, noise=noise.to(self.device, latents.dtype),
                              timesteps=timesteps.to(self.device), hidden=hidden, pooled=pooled, time_ids=time_ids,
                              prediction_type=self.prediction, snr_gamma=cfg.min_snr_gamma)

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
    def _lora_states(self) -> dict[str, dict[str, torch.Tensor]]:
        states = {"unet": lora_state_dict(self.base.unet)}
        if self.cfg.train_text_encoder:
            for i, te in enumerate(self.base.text_encoders):
                states[f"text_encoder{'' if i == 0 else '_2'}"] = lora_state_dict(te)
        return states

    def _checkpoint(self, step: int, optimizer, lr_scheduler) -> Path | None:
        path = None
        if self.acc.is_main_process:
            flat = {f"{part}.{k}": v for part, sd in self._lora_states().items() for k, v in sd.items()}
            path = save_checkpoint(self.cfg.checkpoint_dir(), step=step, lora=flat, optimizer=optimizer,
                                   scheduler=lr_scheduler, keep=self.cfg.keep_checkpoints,
                                   extra={"config": self.cfg.to_dict(), "total_steps": self.cfg.steps,
                                          "loss_history": [round(x, 6) for x in self._losses[:step]]})
            self.emit(CheckpointSaved(step=step, path=str(path)))
        self.acc.wait_for_everyone()
        return path

    def _resume(self, optimizer, lr_scheduler) -> int:
        cfg = self.cfg
        if not cfg.resume:
            return 0
        modules = {"unet": self.base.unet}
        if cfg.train_text_encoder:
            for i, te in enumerate(self.base.text_encoders):
                modules[f"text_encoder{'' if i == 0 else '_2'}"] = te
        restored = restore(cfg.checkpoint_dir(), cfg, modules=modules, optimizer=optimizer, scheduler=lr_scheduler)
        if restored is None:
            self.log(f"No checkpoint in {cfg.checkpoint_dir()}: starting from step 0.", "warning")
            return 0
        step = checkpoint_step(restored)
        self.history = checkpoint_history(restored)[:step]
        if step >= cfg.steps:
            self.log(f"Checkpoint {restored.name} is the run's last step: finishing the run (validation, samples, "
                     "adapter).")
        else:
            self.log(f"Resumed from {restored.name} (step {step}).")
        return step

    def _sample_prompts(self) -> list[str]:
        return prompts_from_captions([i.caption for i in self.items], list(self.cfg.sample_prompts),
                                     self.cfg.trigger)

    def _samples(self, step: int) -> list[Path]:
        paths: list[Path] = []
        if self.acc.is_main_process:
            base, cfg = self.base, self.cfg
            moved = self.device.type == "cuda" and base.vae.device.type != "cuda"
            if moved:
                base.pipe.to(self.device)
            prompts = self._sample_prompts()
            if self.sampler is None:
                self.sampler = SampleRenderer(
                    base.pipe, folder=cfg.samples_dir(), size=cfg.sample_resolution or cfg.resolution,
                    steps=cfg.sample_steps, seed=cfg.seed, device=self.device,
                    lora_modules=[base.unet, *(base.text_encoders if cfg.train_text_encoder else [])])
            self.log(f"Drawing samples at step {step}…")
            paths = self.sampler.render(prompts, step, cancelled=self.cancel.is_set)
            prompts = prompts[:len(paths)]
            if moved:
                base.vae.to("cpu")
                for te in base.text_encoders if not cfg.train_text_encoder else []:
                    te.to("cpu")
                torch.cuda.empty_cache()
            self.emit(SampleReady(step=step, paths=[str(p) for p in paths], prompts=prompts))
        self.acc.wait_for_everyone()
        return paths

    def _finish(self, step, start, cancelled, optimizer, lr_scheduler, vset, losses, tracker, last_samples):
        cfg, acc = self.cfg, self.acc
        if step == 0:  # cancelled before the first step: an untrained adapter would only be the base
            self.emit(nothing_saved(cfg, None))
            return TrainResult(None, 0, True)
        # The checkpoint first: it is what Resume needs. A resumed run stopped before its first new step
        # already has one at this step.
        checkpoint = self._checkpoint(step, optimizer, lr_scheduler) if step > start else None
        checkpoint = checkpoint or (latest_checkpoint(cfg.checkpoint_dir()) if acc.is_main_process else None)
        base_loss = adapter_loss = None
        if cancelled:
            # Cancel means stop now: validation and fresh samples are left to the resumed run.
            self.log("Stopped: validation and final samples are left for Resume.")
        else:
            self.log("Validating: denoising loss of the base vs the adapter…")
            if cfg.train_text_encoder:
                vset.adapter_hidden, vset.adapter_pooled = adapter_conditioning(self.base, vset)
            base_loss, adapter_loss = base_and_adapter_loss(acc.unwrap_model(self.base.unet), self.scheduler, vset,
                                                            prediction_type=self.prediction, seed=cfg.seed,
                                                            dtype=self.weight_dtype)
            if step not in {s for s in sample_steps_of(cfg.steps, every=cfg.sample_every, count=cfg.sample_count)
                            if s > start} and cfg.thumbnail:
                last_samples = self._samples(step)  # the final state's picture for the shelf
        states = self._lora_states()
        checksums = self._rank_checksums(states)
        summary = run_summary(step=step, start=start, total=cfg.steps, cancelled=cancelled, items=len(self.items),
                              skipped=len(self.report.skipped), vset=vset, losses=(base_loss, adapter_loss),
                              train_losses=losses, tracker=tracker, checksums=checksums, family=self.base.family)
        summary["checkpoint"] = str(checkpoint or "")
        adapter = None
        if acc.is_main_process:
            thumb = best_sample(last_samples) if cfg.thumbnail else None
            summary["thumbnail_sample"] = str(thumb or "")
            summary["saved"] = ["adapter"] + (["checkpoint"] if checkpoint else [])
            adapter = self._write_adapter(states, step, thumb, summary)
            if base_loss is not None:
                self.log(f"Validation loss: base {base_loss:.4f} → adapter {adapter_loss:.4f} "
                         f"({summary['validation_change']:+.1%})")
            self.emit(Finished(output=str(adapter), cancelled=cancelled, summary=summary))
        acc.wait_for_everyone()
        return TrainResult(adapter, step, cancelled, summary, checkpoint)

    def _rank_checksums(self, states) -> list[str]:
        mine = weights_checksum(states)
        if self.world == 1:
            return [mine]
        from accelerate.utils import gather_object

        return list(gather_object([mine]))

    def _write_adapter(self, states, step, sample: Path | None, summary) -> Path:
        thumb = thumbnail_of(adapter_half(sample)) if sample else None
        run = RunFacts(started_at=self.started_at, finished_at=time.time(), family=self.base.family,
                       images_per_folder=images_per_folder([i.path for i in self.items], self.report.folder),
                       buckets=[s.bucket for s in self.data.samples])
        extra = adapter_metadata(self.cfg, step=step, train_images=len(self.items), out=self.out,
                                 tag_frequency=self.report.tag_frequency_by_folder, summary=summary, run=run)
        return write_adapter(self.cfg, self.out, states, family=self.base.family, thumbnail=thumb, extra=extra)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(Log(message=message, level=level))

