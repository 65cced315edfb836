"""Aspect-ratio buckets and the deterministic batch plan.

Each image trains at the bucket (W, H) whose aspect is closest to its own, with W·H ≤ resolution², sides
multiples of ``step``, and never more than ``max_upscale`` times the image's own size. A batch holds
samples of one bucket only. The plan of batches for epoch ``e`` is a pure function of (seed, e), so a
resumed run, and every rank of a multi-GPU run, knows which samples step ``s`` uses without saved state.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Crop:
    """How one image becomes a bucket-sized picture: resize to ``resized``, then cut at (left, top)."""

    bucket: tuple[int, int]  # (width, height)
    resized: tuple[int, int]
    left: int
    top: int


def choose_bucket(width: int, height: int, *, resolution: int, step: int, max_upscale: float) -> tuple[int, int]:
    area = min(resolution * resolution, width * height * max_upscale * max_upscale)
    aspect = width / height
    best: tuple[float, int, tuple[int, int]] | None = None
    for w in range(step, 4 * resolution + 1, step):
        h = int(area / w) // step * step
        if h < step:
            break
        if h > 4 * resolution:
            continue
        error = abs(math.log((w / h) / aspect))
        key = (round(error, 6), -(w * h), (w, h))
        if best is None or key < best:
            best = key
    if best is None:  # an image smaller than one step each way: the smallest bucket
        return (step, step)
    return best[2]


def plan_crop(width: int, height: int, bucket: tuple[int, int], *, rng: random.Random | None = None) -> Crop:
    """Scale so the image covers the bucket, then center crop (or a random crop when ``rng`` is given)."""
    bw, bh = bucket
    scale = max(bw / width, bh / height)
    rw, rh = max(bw, round(width * scale)), max(bh, round(height * scale))
    if rng is None:
        left, top = (rw - bw) // 2, (rh - bh) // 2
    else:
        left, top = rng.randint(0, rw - bw), rng.randint(0, rh - bh)
    return Crop(bucket, (rw, rh), left, top)


def apply_crop(img: Image.Image, crop: Crop, *, flip: bool = False) -> Image.Image:
    out = img.resize(crop.resized, Image.Resampling.LANCZOS) if img.size != crop.resized else img
    bw, bh = crop.bucket
    out = out.crop((crop.left, crop.top, crop.left + bw, crop.top + bh))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else out


class BatchPlan:
    """Which samples make up global micro-batch number ``n``, for any n, deterministically."""

    def __init__(self, buckets: list[tuple[int, int]], batch_size: int, seed: int):
        if not buckets:
            raise ValueError("no samples")
        self.batch_size = batch_size
        self.seed = seed
        self._groups: dict[tuple[int, int], list[int]] = {}
        for index, bucket in enumerate(buckets):
            self._groups.setdefault(bucket, []).append(index)
        self._epochs: dict[int, list[list[int]]] = {}  # the last few epochs' batches, most recent last
        self.batches_per_epoch = len(self._epoch(0))

    def batch(self, n: int) -> list[int]:
        epoch, pos = divmod(n, self.batches_per_epoch)
        return self._epoch(epoch)[pos]

    def _epoch(self, epoch: int) -> list[list[int]]:
        batches = self._epochs.pop(epoch, None)
        if batches is None:
            batches = self._shuffled_epoch(epoch)
        self._epochs[epoch] = batches
        if len(self._epochs) > 4:
            del self._epochs[next(iter(self._epochs))]
        return batches

    def _shuffled_epoch(self, epoch: int) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{epoch}")
        batches = []
        for bucket in sorted(self._groups):
            members = list(self._groups[bucket])
            rng.shuffle(members)
            # A short last batch is topped up from its own bucket, so every image is seen each epoch.
            while len(members) % self.batch_size:
                members.append(members[len(members) % len(self._groups[bucket])])
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        rng.shuffle(batches)
        return batches
