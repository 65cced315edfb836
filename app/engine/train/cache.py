"""Turning the dataset into what the UNet needs, once: VAE latents and text-encoder outputs, cached on disk.

Cache keys are content hashes (image bytes + crop + flip + model fingerprint; caption + model fingerprint),
so renaming a file still hits, editing one misses, and a second run on the same folder starts at once.
Files are small safetensors under ``user_cache_dir()/train``, written atomically (a killed run leaves no
half file). When caching is off the decoded, resized pixels stay in memory and are encoded every step.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from app.engine.atomic import atomic_path
from app.engine.events import (
    NEVER_CANCEL,
    CancelToken,
    EventCallback,
    Phase,
    Progress,
    ignore_event,
)
from app.engine.paths import user_cache_dir
from app.engine.train.buckets import Crop, apply_crop, choose_bucket, plan_crop
from app.engine.train.dataset import DatasetItem
from app.engine.train.images import load_rgb
from app.engine.train.model import TrainingBase, encode_tokens, tokenize
from app.engine.train.objective import sdxl_time_ids_for

CACHE_VERSION = "1"
_ENCODE_BATCH = 8


@dataclass
class Sample:
    """One training example: an image (maybe mirrored) at its bucket, and its caption's index."""

    item: int
    flip: bool
    crop: Crop
    caption: int
    original_size: tuple[int, int]  # (height, width) for SDXL's size conditioning

    @property
    def bucket(self) -> tuple[int, int]:
        return self.crop.bucket


@dataclass
class Prepared:
    samples: list[Sample]
    captions: list[str]
    latents: list[torch.Tensor] | None = None  # per sample, when cached
    pixels: list[torch.Tensor] | None = None  # per sample resized uint8 (C, H, W), when not cached
    token_ids: list[torch.Tensor] = field(default_factory=list)  # per tokenizer: (n_captions, 77)
    text_hidden: torch.Tensor | None = None  # (n_captions, 77, D) when text outputs are cached
    text_pooled: torch.Tensor | None = None  # SDXL: (n_captions, D2)
    empty_caption: int | None = None  # index of "" in captions (what caption dropout swaps in)
    cache_hits: int = 0
    cache_misses: int = 0


def plan_samples(
    items: list[DatasetItem], *, resolution: int, step: int, max_upscale: float, flip: bool
) -> tuple[list[Sample], list[str]]:
    captions: list[str] = []
    caption_index: dict[str, int] = {}
    samples = []
    for i, item in enumerate(items):
        bucket = choose_bucket(item.width, item.height, resolution=resolution, step=step, max_upscale=max_upscale)
        crop = plan_crop(item.width, item.height, bucket)
        c = caption_index.setdefault(item.caption, len(captions))
        if c == len(captions):
            captions.append(item.caption)
        for mirrored in (False, True) if flip else (False,):
            samples.append(Sample(i, mirrored, crop, c, (item.height, item.width)))
    return samples, captions


def prepare(
    base: TrainingBase,
    items: list[DatasetItem],
    samples: list[Sample],
    captions: list[str],
    *,
    cache_latents: bool,
    cache_text: bool,
    background: str,
    max_pixels: int,
    device: torch.device,
    on_event: EventCallback = ignore_event,
    cancel: CancelToken = NEVER_CANCEL,
) -> Prepared:
    """Tokenise every caption and encode (or, without the cache, load) every sample's image; reports
    ``Progress(phase=CACHE)`` per image and stops early (a partial result) once ``cancel`` is set."""

    def progress(done: int, total: int) -> None:
        on_event(Progress(step=done, total=total, phase=Phase.CACHE))

    out = Prepared(samples, captions, empty_caption=captions.index("") if "" in captions else None)
    out.token_ids = tokenize(base, captions)
    if cache_text:
        _encode_text(base, out, device)
    if cache_latents:
        _encode_latents(base, items, out, background, max_pixels, device, progress, cancel.is_set)
    else:
        out.pixels = []
        for n, s in enumerate(samples):
            img = load_rgb(items[s.item].path, max_pixels=max_pixels, background=background)
            img = img.resize(s.crop.resized) if img.size != s.crop.resized else img
            out.pixels.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
            progress(n + 1, len(samples))
    return out


def pixels_for(prepared: Prepared, index: int, rng: random.Random | None) -> tuple[torch.Tensor, Crop]:
    """The cropped [-1, 1] image of sample ``index`` (random crop when ``rng`` is given)."""
    s = prepared.samples[index]
    full = prepared.pixels[index]
    crop = s.crop
    if rng is not None:
        crop = Crop(
            crop.bucket,
            crop.resized,
            rng.randint(0, crop.resized[0] - crop.bucket[0]),
            rng.randint(0, crop.resized[1] - crop.bucket[1]),
        )
    bw, bh = crop.bucket
    x = full[:, crop.top : crop.top + bh, crop.left : crop.left + bw]
    if s.flip:
        x = x.flip(-1)
    return x.float() / 127.5 - 1.0, crop


def batch_inputs(
    base: TrainingBase,
    data: Prepared,
    indices: list[int],
    gen: torch.Generator,
    *,
    random_crop: bool,
    text_encoders: list,
    device,
    dtype,
    caption_dropout: float = 0.0,
):
    """UNet inputs of one micro-batch: (latents, text hidden states, pooled text or None, SDXL time ids or None).

    Cached: a gather from memory. Uncached: the VAE (and the text encoders, with gradients when they are
    being trained) run here. With ``caption_dropout`` each caption is swapped for the empty one
    (``data.empty_caption``, which must be set) with that probability, drawn from ``gen`` so a resumed run
    replays the same choices.
    """
    crops = [data.samples[i].crop for i in indices]
    if data.latents is not None:
        latents = torch.stack([data.latents[i] for i in indices]).to(device, dtype)
    else:
        crop_rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen))) if random_crop else None
        pixels, crops = zip(*(pixels_for(data, i, crop_rng) for i in indices))
        latents = encode_pixels(base, torch.stack(pixels)).to(device, dtype)
    captions = [data.samples[i].caption for i in indices]
    if caption_dropout > 0:  # no draw at all when off: runs without dropout keep their random streams
        dropped = (torch.rand(len(captions), generator=gen) < caption_dropout).tolist()
        captions = [data.empty_caption if d else c for c, d in zip(captions, dropped)]
    hidden, pooled = text_inputs(base, data, captions, text_encoders=text_encoders, device=device, dtype=dtype)
    time_ids = None
    if base.is_sdxl:
        time_ids = torch.stack(
            [
                sdxl_time_ids_for(data.samples[i].original_size, c, data.samples[i].bucket)
                for i, c in zip(indices, crops)
            ]
        ).to(device, dtype)
    return latents, hidden, pooled, time_ids


def text_inputs(base: TrainingBase, data: Prepared, captions: list[int], *, text_encoders: list, device, dtype):
    """(hidden states, pooled or None) of the captions at these indices: from the cache, or from the text
    encoders (with gradients when they are being trained, i.e. when ``text_encoders`` is not empty)."""
    if data.text_hidden is not None:
        hidden = data.text_hidden[captions].to(device, dtype)
        pooled = None if data.text_pooled is None else data.text_pooled[captions].to(device, dtype)
        return hidden, pooled
    ids = [t[captions] for t in data.token_ids]
    with contextlib.nullcontext() if text_encoders else torch.no_grad():
        return encode_tokens(base, ids, encoders=text_encoders or None)


@torch.no_grad()
def encode_pixels(base: TrainingBase, pixels: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images → scaled latents. ``mode()`` not ``sample()``: deterministic, and right for a cache."""
    vae = base.vae
    dist = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    latents = dist.mode()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * vae.config.scaling_factor


def _encode_latents(base, items, out: Prepared, background, max_pixels, device, progress, cancelled) -> None:
    folder = user_cache_dir() / "train" / "latents"
    fingerprint = base.fingerprint("vae")
    file_hashes: dict[int, str] = {}
    keys = []
    for s in out.samples:
        if s.item not in file_hashes:
            file_hashes[s.item] = _file_hash(items[s.item].path)
        keys.append(_key(CACHE_VERSION, file_hashes[s.item], s.crop, s.flip, background, fingerprint))
    latents: list[torch.Tensor | None] = [None] * len(out.samples)
    missing = []
    for n, key in enumerate(keys):
        latents[n] = _read(folder, key, "latent")
        if latents[n] is None:
            missing.append(n)
    out.cache_hits, out.cache_misses = len(keys) - len(missing), len(missing)
    done = len(keys) - len(missing)
    progress(done, len(keys))
    # Encode misses in same-bucket groups so a batch is one tensor.
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for n in missing:
        by_bucket.setdefault(out.samples[n].bucket, []).append(n)
    for group in by_bucket.values():
        for start in range(0, len(group), _ENCODE_BATCH):
            if cancelled():
                return
            chunk = group[start : start + _ENCODE_BATCH]
            batch = []
            for n in chunk:
                s = out.samples[n]
                img = load_rgb(items[s.item].path, max_pixels=max_pixels, background=background)
                arr = np.asarray(apply_crop(img, s.crop, flip=s.flip))
                batch.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 127.5 - 1.0)
            encoded = encode_pixels(base, torch.stack(batch)).float().cpu()
            for n, latent in zip(chunk, encoded):
                latents[n] = latent.contiguous()
                _write(folder, keys[n], {"latent": latents[n]})
            done += len(chunk)
            progress(done, len(keys))
    out.latents = latents  # type: ignore[assignment]


@torch.no_grad()
def _encode_text(base: TrainingBase, out: Prepared, device) -> None:
    folder = user_cache_dir() / "train" / "text"
    fingerprint = base.fingerprint("text") + base.family
    hidden, pooled = [], []
    for c, caption in enumerate(out.captions):
        key = _key(CACHE_VERSION, hashlib.sha256(caption.encode()).hexdigest(), fingerprint)
        cached = _read_all(folder, key)
        if cached is None:
            h, p = encode_tokens(base, [ids[c : c + 1] for ids in out.token_ids])
            cached = {"hidden": h[0].float().cpu().contiguous()}
            if p is not None:
                cached["pooled"] = p[0].float().cpu().contiguous()
            _write(folder, key, cached)
        hidden.append(cached["hidden"])
        if "pooled" in cached:
            pooled.append(cached["pooled"])
    out.text_hidden = torch.stack(hidden)
    out.text_pooled = torch.stack(pooled) if pooled else None


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _path(folder: Path, key: str) -> Path:
    return folder / key[:2] / f"{key}.safetensors"


def _read_all(folder: Path, key: str) -> dict[str, torch.Tensor] | None:
    path = _path(folder, key)
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except Exception:  # a damaged cache entry is just a miss; it is rewritten
        return None


def _read(folder: Path, key: str, name: str) -> torch.Tensor | None:
    data = _read_all(folder, key)
    return None if data is None else data.get(name)


def _write(folder: Path, key: str, tensors: dict[str, torch.Tensor]) -> None:
    try:
        with atomic_path(_path(folder, key)) as tmp:
            save_file(tensors, str(tmp))
    except OSError:
        pass  # a full or read-only cache disk costs speed next time, not this run
