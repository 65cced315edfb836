"""Samples during training: base vs adapter side by side, from the dataset's own captions, at fixed seeds.

Each sample is one PNG, ``step-000150-0.png``: the base model on the left, the adapter as it is at that
step on the right, same prompt and seed, with the step and prompt in the PNG's text chunks. The base half
never changes during a run (the LoRA is switched off for it), so it is drawn once and reused. The adapter's
thumbnail is the most colourful, contrasty right half of the last round, not whichever came first.
"""

from __future__ import annotations

import gc
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.engine.atomic import atomic_write_bytes
from app.engine.train.lora import set_lora_enabled

DEFAULT_PROMPTS = 2  # prompts per round when the user gave none: cheap, and two scenes say more than one
GAP = 2  # pixels between the base and adapter halves


def sample_steps_of(total: int, *, every: int, count: int) -> set[int]:
    """The steps at which samples are drawn: every ``every`` steps, else ``count`` rounds spread evenly
    (the last one at the final step)."""
    if every > 0:
        return set(range(every, total + 1, every))
    if count <= 0:
        return set()
    return {max(1, round(total * k / count)) for k in range(1, count + 1)}


def prompts_from_captions(captions: list[str], user_prompts: list[str], trigger: str) -> list[str]:
    """The user's prompts, else up to two of the dataset's own captions (trigger included), spread apart."""
    if user_prompts:
        return list(user_prompts)
    distinct = list(dict.fromkeys(c for c in captions if c.strip()))
    if not distinct:
        return [trigger] if trigger else [""]
    picks = [distinct[round(i * (len(distinct) - 1) / max(1, DEFAULT_PROMPTS - 1))] for i in range(DEFAULT_PROMPTS)]
    return list(dict.fromkeys(picks))


class SampleRenderer:
    """Draws rounds of samples for one run; remembers the base images so each round costs only the adapter's."""

    def __init__(
        self, pipe, *, folder: Path, size: int, steps: int, seed: int, device: torch.device, lora_modules: list
    ) -> None:
        self.pipe, self.folder, self.size, self.steps, self.seed = pipe, folder, size, steps, seed
        self.device = device
        self.lora_modules = lora_modules  # the UNet (and text encoders) whose LoRA is switched off for the base
        self._base: dict[str, Image.Image] = {}

    @torch.no_grad()
    def render(self, prompts: list[str], step: int, *, cancelled=lambda: False) -> list[Path]:
        """One ``base | adapter`` PNG per prompt; stops between images when ``cancelled()``."""
        unet = self.pipe.unet
        was_training = unet.training
        unet.eval()
        self.pipe.set_progress_bar_config(disable=True)
        paths = []
        try:
            for i, prompt in enumerate(prompts):
                if cancelled():
                    break
                if prompt not in self._base:
                    self._switch_lora(False)
                    try:
                        self._base[prompt] = self._draw(prompt, i)
                    finally:
                        self._switch_lora(True)
                pair = side_by_side(self._base[prompt], self._draw(prompt, i))
                path = self.folder / f"step-{step:06d}-{i}.png"
                info = PngInfo()
                info.add_text("step", str(step))
                info.add_text("prompt", prompt)
                info.add_text("seed", str(self.seed + i))
                info.add_text("layout", "left: base model, right: adapter")
                atomic_write_bytes(path, png_bytes(pair, info))
                paths.append(path)
        finally:
            unet.train(was_training)
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        return paths

    def _draw(self, prompt: str, i: int) -> Image.Image:
        generator = torch.Generator(device="cpu").manual_seed(self.seed + i)
        return self.pipe(
            prompt,
            num_inference_steps=self.steps,
            height=self.size,
            width=self.size,
            generator=generator,
            output_type="pil",
        ).images[0]

    def _switch_lora(self, enabled: bool) -> None:
        for module in self.lora_modules:
            set_lora_enabled(module, enabled)


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    pair = Image.new("RGB", (left.width + GAP + right.width, max(left.height, right.height)), (128, 128, 128))
    pair.paste(left.convert("RGB"), (0, 0))
    pair.paste(right.convert("RGB"), (left.width + GAP, 0))
    return pair


def adapter_half(path: Path) -> Image.Image:
    """The right (adapter) half of a ``base | adapter`` sample."""
    with Image.open(path) as img:
        pair = img.convert("RGB")
    width = (pair.width - GAP) // 2
    return pair.crop((pair.width - width, 0, pair.width, pair.height))


def interest(image: Image.Image) -> float:
    """How much a picture shows: luminance contrast plus colourfulness (Hasler & Süsstrunk). A pale, flat
    blob scores near 0; a crisp, coloured picture scores high."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    if rgb.size == 0:
        return 0.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, (r + g) / 2 - b
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    contrast = float((0.299 * r + 0.587 * g + 0.114 * b).std())
    return colourfulness + contrast


def best_sample(paths: list[Path]) -> Path | None:
    """The sample whose adapter half shows the most (see ``interest``)."""
    scored = [(interest(adapter_half(p)), -i, p) for i, p in enumerate(paths) if Path(p).is_file()]
    return max(scored)[2] if scored else None


def png_bytes(image: Image.Image, info: PngInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def thumbnail_of(image: Image.Image | Path, size: int = 256) -> Image.Image:
    if isinstance(image, Path):
        with Image.open(image) as img:
            thumb = img.convert("RGB")
    else:
        thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    if thumb.size != (size, size) and max(thumb.size) < size:
        # Samples at a small training resolution are upscaled so every thumbnail is 256 px on its long side.
        scale = size / max(thumb.size)
        thumb = thumb.resize((round(thumb.size[0] * scale), round(thumb.size[1] * scale)), Image.Resampling.LANCZOS)
    return thumb
