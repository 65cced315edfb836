"""The long-lived generator: one loaded base pipeline, a shelf stack applied on top, PNGs out.

    gen = Generator("models/my-sd15")                     # loads the base once
    images = gen.generate(GenerateConfig(prompt="a lighthouse", stack=[StackEntry("ink.safetensors")]),
                          on_event=print, cancel=token)
    gen.prepare_stack(new_stack)                          # a toggle: the next run's re-patch starts now
    gen.swap_base("models/other")                         # the GUI's base picker

Applying a stack never reloads the base; adapters stay loaded in an LRU (``LoadedAdapters``) and a
toggle or a new weight only switches per-layer scales. Disabled or zero-weight entries are left out of
the active set, so they cost nothing and the image is the base image bit for bit.
For a run, ``StackRunner`` merges the active stack into the weights (or keeps side paths, whichever
measures cheaper; ``gen.stacks.mode`` forces one) and restores the original tensors bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.configbase import validate
from app.engine.errors import ModelLoadError, UserError
from app.engine.events import (
    NEVER_CANCEL,
    CancelToken,
    EventCallback,
    Finished,
    ImageReady,
    Log,
    Preview,
    Progress,
    ignore_event,
)
from app.engine.generate.adapter_cache import ActiveAdapter, LoadedAdapters
from app.engine.generate.config import GenerateConfig, GeneratedImage
from app.engine.generate.identity import AdapterIdentity, adapter_identity, base_model_hash
from app.engine.generate.input_meta import image_input_fields, image_input_record
from app.engine.generate.pngmeta import FORMAT_VERSION, LoraUse, a1111_parameters, write_png
from app.engine.generate.preview import write_preview
from app.engine.generate.recent_inputs import remember_input_folders
from app.engine.generate.samplers import make_scheduler
from app.engine.generate.sanity import StackWatch
from app.engine.generate.shareable import shareable_settings, shareable_stack
from app.engine.generate.stack_check import usable_stack
from app.engine.generate.stack_runner import StackRunner
from app.engine.paths import user_cache_dir, user_data_dir
from app.engine.rate import RateTracker
from app.engine.shelf.stack import StackEntry

DEFAULT_MAX_LOADED = 16  # beyond this, switching slows down and memory grows for little gain


@dataclass
class _Base:
    pipe: Any
    path: str  # "" when handed a pipeline object without a known origin
    family: str  # sd1 | sd2 | sd2-v | sdxl
    name: str


def insert_trigger_phrases(prompt: str, phrases: list[str]) -> str:
    """Prepend each phrase that the prompt does not already contain (case-insensitive), in stack order."""
    missing: list[str] = []
    for phrase in phrases:
        phrase = phrase.strip()
        if phrase and phrase.lower() not in prompt.lower() and phrase.lower() not in (m.lower() for m in missing):
            missing.append(phrase)
    return ", ".join([*missing, prompt.strip()] if prompt.strip() else missing)


class Generator:
    """Holds ONE base pipeline; ``generate`` may be called any number of times (one at a time)."""

    def __init__(self, base: Any, *, max_loaded_adapters: int = DEFAULT_MAX_LOADED) -> None:
        self._lock = threading.RLock()
        self._max_loaded = max_loaded_adapters
        self._base: _Base | None = None
        self.adapters: LoadedAdapters
        self.swap_base(base)

    # ------------------------------------------------------------------------------ base model
    @property
    def pipe(self) -> Any:
        assert self._base is not None
        return self._base.pipe

    @property
    def family(self) -> str:
        assert self._base is not None
        return self._base.family

    def swap_base(self, base: Any) -> None:
        """Replace the base model; adapters loaded into the old one are dropped with it."""
        with self._lock:
            new = _load_base(base)  # the old base stays usable if this fails
            old = self._base
            if old is not None:
                self.stacks.close()  # the original tensors go back before the adapters are dropped
            if old is not None and old.pipe is new.pipe:
                self.adapters.clear()  # same pipeline handed back: start from a clean slate
            new.pipe.set_progress_bar_config(disable=True)
            self._base = new
            self._scheduler_config = dict(new.pipe.scheduler.config)
            self.adapters = LoadedAdapters(new.pipe, self._max_loaded)
            self.stacks = StackRunner(new.pipe, self.adapters)
            self._model_hash: str | None = None
            if old is not None and old.pipe is not new.pipe:
                del old
                _release_memory()

    def _model_hash_value(self) -> str:
        if self._model_hash is None:
            self._model_hash = base_model_hash(self._base.path) if self._base and self._base.path else ""
        return self._model_hash

    def native_size(self) -> int:
        pipe = self.pipe
        return int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))

    # ------------------------------------------------------------------------------ the stack
    def apply_stack(
        self, stack: list[StackEntry], *, on_event: EventCallback = ignore_event, run: tuple[int, int] | None = None
    ) -> list[AdapterIdentity]:
        """Load what the active entries need (once) and activate exactly them; returns their identities.

        Without ``run`` the stack goes on the side path (weights restored); with ``run`` = (UNet calls,
        UNet input elements) the stack runner may merge it into the weights for that run instead.
        """
        with self._lock, self.stacks.lock:  # the runner's preparing thread never plans mid-load
            active_entries = [e for e in stack if _is_active(e)]
            identities = [adapter_identity(e.path) for e in active_entries]
            self.adapters.ensure(identities, on_log=lambda msg, level: on_event(Log(message=msg, level=level)))
            active = _active_adapters(active_entries, identities)
            if run is None:
                self.stacks.apply_side(active)
            else:
                self.stacks.apply_for_run(active, calls=run[0], size=run[1])
            return identities

    def prepare_stack(self, stack: list[StackEntry]) -> bool:
        """A toggle or reweight in the UI: start re-patching for the next run in the background; returns at
        once (never waits for a run in progress). False when nothing was started: an adapter of the stack is
        not loaded yet (the next run loads and patches it) or a file is gone."""
        active_entries = [e for e in stack if _is_active(e)]
        try:
            identities = [adapter_identity(e.path) for e in active_entries]
        except UserError:
            return False  # the run reports it
        if any(ident.adapter_name not in self.adapters for ident in identities):
            return False
        self.stacks.prepare(_active_adapters(active_entries, identities))
        return True

    # ------------------------------------------------------------------------------ generation
    def generate(
        self,
        config: GenerateConfig,
        *,
        on_event: EventCallback = ignore_event,
        cancel: CancelToken = NEVER_CANCEL,
    ) -> list[GeneratedImage]:
        with self._lock:
            return self._generate(config, on_event, cancel)

    def _generate(self, config: GenerateConfig, on_event: EventCallback, cancel: CancelToken) -> list[GeneratedImage]:
        validate(config)
        config = dataclasses.replace(config, stack=usable_stack(config.stack, on_event))  # vanished files: left out
        from app.engine.generate.img2img import source_for

        source = source_for(config, self.pipe, self.native_size(), on_event)  # None: text to image
        width = int(source.width if source else config.width or self.native_size())
        height = int(source.height if source else config.height or self.native_size())
        if width % 8 or height % 8:
            raise UserError(f"Width and height must be multiples of 8 (got {width}x{height}).")
        started = time.perf_counter()
        self.pipe.scheduler = make_scheduler(config.sampler, self._scheduler_config)

        active_entries = [e for e in config.stack if _is_active(e)]
        cfg_batch = 2 if config.guidance > 1 else 1  # classifier-free guidance runs both halves in one call
        scale = int(getattr(self.pipe, "vae_scale_factor", 8))
        run = (config.steps * config.batch_count, cfg_batch * (height // scale) * (width // scale))
        identities = self.apply_stack(config.stack, on_event=on_event, run=run)
        watch = StackWatch.of(identities, active_entries)  # a broken-down image stops, naming these styles
        prompt = config.prompt
        if config.insert_triggers:
            prompt = insert_trigger_phrases(prompt, [i.trigger_phrase for i in identities])
        loras = [
            LoraUse(ident.a1111_name, float(e.weight), e.text_encoder_weight, ident.autov2)
            for e, ident in zip(active_entries, identities)
        ]
        stack_record = shareable_stack(config.stack)  # names and hashes: the PNG may be shared
        if source is not None:
            remember_input_folders([config.init_image, config.mask_image])  # where a restore looks for them
        base_seed = config.seed if config.seed is not None else secrets.randbelow(2**32)
        out_dir = Path(config.out_dir) if config.out_dir else user_data_dir() / "images"
        preview_dir = self._fresh_preview_dir() if config.preview_every else None

        results: list[GeneratedImage] = []
        cancelled = False
        for index in range(config.batch_count):
            seed = (base_seed + index) % 2**32
            image = (
                None
                if cancel.is_set()
                else self._sample(
                    config, prompt, width, height, seed, index, preview_dir, on_event, cancel, source, watch
                )
            )
            if image is None:
                cancelled = True  # an unfinished image is never saved
                break
            parameters = a1111_parameters(
                prompt=prompt, negative=config.negative, steps=config.steps, sampler=config.sampler,
                guidance=config.guidance, seed=seed, width=width, height=height,
                model_hash=self._model_hash_value(), model_name=self._base.name, loras=loras,
                extra=image_input_fields(config, source),
            )  # fmt: skip
            record = {
                "format": FORMAT_VERSION,
                "app": "StyleShelf",
                "config": {
                    **shareable_settings(config.to_dict()),
                    **{"seed": seed, "width": width, "height": height, "batch_count": 1},
                },
                "prompt_used": prompt,
                "base": {"name": self._base.name, "hash": self._model_hash_value(), "family": self.family},
                "stack": stack_record,
                **image_input_record(config, source),
            }
            target = _output_path(out_dir, config.file_stem, index, config.batch_count, seed)
            write_png(target, image, parameters, record)
            results.append(GeneratedImage(path=target, seed=seed, parameters=parameters))
            on_event(ImageReady(path=str(target), index=index, seed=seed))

        on_event(
            Finished(
                output=str(results[-1].path) if results else "",
                cancelled=cancelled,
                summary={
                    "images": [str(r.path) for r in results],
                    "seeds": [r.seed for r in results],
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
        )
        return results

    def _sample(
        self,
        config: GenerateConfig,
        prompt: str,
        width: int,
        height: int,
        seed: int,
        index: int,
        preview_dir: Path | None,
        on_event: EventCallback,
        cancel: CancelToken,
        source: Any = None,
        watch: StackWatch = StackWatch(()),
    ) -> Any:
        """One image (PIL), or None when cancelled mid-way. Progress counts steps over the whole batch."""
        import torch

        rates = RateTracker(window=None)  # over this image's steps so far
        sdxl = self.family == "sdxl"

        def on_step(pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict:
            if cancel.is_set():
                pipe._interrupt = True  # diffusers skips the remaining steps
                return {}
            n = int(getattr(pipe, "num_timesteps", 0) or config.steps)  # Heun & co. take more than `steps`
            done, total = index * n + step + 1, config.batch_count * n
            watch.check_latents(tensors.get("latents"), step + 1)
            rate = rates.tick()
            eta = rates.eta(total - done, rate)
            on_event(Progress(step=done, total=total, it_per_s=rate, eta_s=eta, phase="generate"))
            if preview_dir is not None and (step + 1) % config.preview_every == 0 and "latents" in tensors:
                target = write_preview(tensors["latents"], preview_dir / f"step-{done:05d}.png", sdxl=sdxl)
                on_event(Preview(step=done, total=total, path=str(target)))
            return {}

        pipe = self.pipe if source is None else source.bind(self.pipe)  # image to image, inpainting
        try:
            output = pipe(
                prompt=prompt,
                negative_prompt=config.negative or None,
                num_inference_steps=config.steps,
                guidance_scale=config.guidance,
                width=width,
                height=height,
                # CPU noise: the same seed gives the same image on any device, as A1111's default does.
                generator=torch.Generator(device="cpu").manual_seed(seed),
                callback_on_step_end=on_step,
                callback_on_step_end_tensor_inputs=["latents"],
                output_type="pil",
            )
        except torch.cuda.OutOfMemoryError:
            raise UserError(
                f"Out of GPU memory at {width}x{height}.", hint="Lower the size or close other GPU programs."
            ) from None
        if getattr(self.pipe, "_interrupt", False) or cancel.is_set():
            return None
        watch.check_image(output.images[0])
        return output.images[0]

    def _fresh_preview_dir(self) -> Path:
        folder = user_cache_dir() / "previews" / f"gen-{os.getpid()}-{id(self):x}"
        shutil.rmtree(folder, ignore_errors=True)  # only the current run's previews are worth keeping
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _active_adapters(entries: list[StackEntry], identities: list[AdapterIdentity]) -> list[ActiveAdapter]:
    return [
        ActiveAdapter(
            ident.adapter_name,
            float(e.weight),
            float(e.weight if e.text_encoder_weight is None else e.text_encoder_weight),
        )
        for e, ident in zip(entries, identities)
    ]


def _release_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()  # hand the old model's VRAM back before the next allocation spike


def _is_active(entry: StackEntry) -> bool:
    te = entry.weight if entry.text_encoder_weight is None else entry.text_encoder_weight
    return bool(entry.enabled) and (entry.weight != 0 or te != 0)


_NUMBERED = re.compile(r"^(\d{5})-")


def _output_path(out_dir: Path, stem: str, index: int, count: int, seed: int) -> Path:
    if stem:
        return out_dir / (f"{stem}.png" if count == 1 else f"{stem}-{index + 1}.png")
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in out_dir.iterdir() if (m := _NUMBERED.match(p.name))]
    return out_dir / f"{max(numbers, default=0) + 1:05d}-{seed}.png"


# ------------------------------------------------------------------------------ base loading
def _load_base(base: Any) -> _Base:
    if isinstance(base, (str, os.PathLike)):
        return _load_base_from_path(Path(base))
    pipe = getattr(base, "pipe", base)
    if not hasattr(pipe, "unet"):
        raise TypeError(f"expected a path, a loaded base or a diffusers pipeline, got {type(base).__name__}")
    path = str(getattr(base, "path", "") or getattr(pipe, "name_or_path", "") or "")
    family = str(getattr(base, "family", "") or _guess_family(pipe))
    return _Base(pipe=pipe, path=path, family=family, name=Path(path).stem if path else "base")


def _load_base_from_path(path: Path) -> _Base:
    if not path.exists():
        raise ModelLoadError(f"Base model not found: {path}")
    from app.engine.models.loading import load_base

    loaded = load_base(path)
    return _Base(pipe=loaded.pipe, path=str(path), family=loaded.family, name=loaded.name)


def _guess_family(pipe: Any) -> str:
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    v_pred = pipe.scheduler.config.get("prediction_type") == "v_prediction"
    if v_pred:
        return "sd2-v"
    return "sd2" if pipe.unet.config.get("use_linear_projection") else "sd1"
