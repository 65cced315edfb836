"""Image-to-image and inpainting on the loaded base and the current shelf stack.

``prepare_source`` reads the init image and mask of a ``GenerateConfig`` once per run (size, resize mode,
mask blur, "only masked" crop, masked content fill); ``Source.bind(pipe)`` returns a callable that takes
the text-to-image pipeline's arguments and runs diffusers' img2img or inpaint pipeline built from the
loaded components with ``from_pipe`` (about 1 ms: the same UNet, VAE, text encoders and loaded adapters,
never a second copy), then pastes the result back like AUTOMATIC1111.

The init image is encoded with the posterior's mode, not a sample: diffusers samples, which on a barely
regularised autoencoder (the demo model's has a posterior std of ~1) adds unit noise to every latent, and
A1111's real SD VAEs have std ~0.01 so the two agree there. A strength too small for one denoising step
(steps × strength < 1, strength 0 included) returns the autoencoder's round trip of the input.

We encode ourselves and hand diffusers latents, so its own guard against half-precision overflow (SDXL's VAE
gives inf/NaN in fp16; diffusers encodes in fp32 when the VAE config says ``force_upcast``) never runs:
``_float32_vae`` does the same around our encodes and decodes, then the latents go back to the run's dtype.

A normal (4-channel) base inpaints as A1111 does for normal models: diffusers' StableDiffusionInpaintPipeline
blends the known latents (noised to the current step) back outside the mask after every step. A 9-channel
inpainting UNet is fed the mask and the masked picture's latents as it was trained; text-to-image on such a
base is inpainting with everything masked.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from app.engine.errors import UserError
from app.engine.generate import masks

INPAINT_UNET_CHANNELS = 9
MAX_INPUT_PIXELS = 64_000_000  # a decompression-bomb guard; 8K × 8K photos pass


def is_inpainting_unet(pipe: Any) -> bool:
    return int(pipe.unet.config.in_channels) == INPAINT_UNET_CHANNELS


def base_kind(pipe: Any) -> str:
    """How the base inpaints, in words for logs and the model panel."""
    if is_inpainting_unet(pipe):
        return "inpainting model (9-channel UNet): used as such for inpainting"
    return "normal model: inpainting blends the kept area back at every step"


def source_for(config: Any, pipe: Any, native: int, on_event: Callable[[Any], None]) -> "Source | None":
    """The prepared inputs of an image-to-image / inpainting run; None for plain text to image."""
    inpainting_base = is_inpainting_unet(pipe)
    if not (config.init_image or inpainting_base):
        return None
    if config.mask_image or inpainting_base:
        from app.engine.events import Log

        on_event(Log(message=f"Base: {base_kind(pipe)}."))
    return prepare_source(config, pipe, native)


@dataclass
class Source:
    """The prepared pixels of one image-to-image or inpainting run."""

    image: Image.Image  # what is encoded, at the processing size
    width: int  # processing size (the model's input)
    height: int
    strength: float
    original: Image.Image | None = None  # the input at its own size (None: text-to-image on an inpainting base)
    mask: Image.Image | None = None  # L, processing size, blurred; white = repaint
    overlay: Image.Image | None = None  # L, output size: how much of the new picture shows
    base_for_overlay: Image.Image | None = None  # what shows where the overlay is black
    region: tuple[int, int, int, int] | None = None  # "only masked": the crop in the original
    masked_content: str = "original"
    init_sha256: str = ""
    mask_sha256: str = ""

    def bind(self, pipe: Any) -> Callable[..., Any]:
        """A stand-in for ``pipe(**text_to_image_kwargs)`` that runs this source instead."""
        return lambda **kwargs: _Run(self, pipe).call(**kwargs)


# ---------------------------------------------------------------------------------------------- inputs
def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_picture(path: str | Path, what: str) -> Image.Image:
    from app.engine.train.images import SkipImage, load_rgb

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return load_rgb(path, max_pixels=MAX_INPUT_PIXELS)
    except SkipImage as err:
        raise UserError(f"{what} {path.name}: {err}.") from None


def _load_mask_file(path: str | Path, size: tuple[int, int]) -> Image.Image:
    """The mask's brightness (white = repaint) at the input's size; transparency counts as white paper."""
    mask = load_picture(path, "Mask").convert("L")
    return mask if mask.size == size else mask.resize(size, Image.LANCZOS)


def output_size(config: Any, native: int, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """The processing size: the config's, else the model's size bucket nearest the input's aspect ratio."""
    if image_size is None or (config.width and config.height):
        return int(config.width or native), int(config.height or native)
    from app.engine.train.buckets import choose_bucket

    w, h = choose_bucket(*image_size, resolution=native, step=max(8, native // 8), max_upscale=1e6)
    if config.width:  # one side given: keep the input's aspect for the other
        return int(config.width), max(8, round(config.width * h / w / 8) * 8)
    if config.height:
        return max(8, round(config.height * w / h / 8) * 8), int(config.height)
    return w, h


def prepare_source(config: Any, pipe: Any, native: int) -> Source:
    inpainting_base = is_inpainting_unet(pipe)
    if not config.init_image:  # text-to-image on an inpainting base: repaint everything from grey
        width, height = output_size(config, native, None)
        white = Image.new("L", (width, height), 255)
        return Source(Image.new("RGB", (width, height), (127, 127, 127)), width, height, 1.0, mask=white)
    original = load_picture(config.init_image, "Init image")
    init_hash = file_sha256(config.init_image)
    if not config.mask_image:
        width, height = output_size(config, native, original.size)
        image = masks.resize_to(original, width, height, config.resize_mode)
        mask = Image.new("L", (width, height), 255) if inpainting_base else None
        return Source(image, width, height, config.strength, original=original, mask=mask, init_sha256=init_hash)

    blurred = masks.blur_mask(_load_mask_file(config.mask_image, original.size), int(config.mask_blur))
    if not any(blurred.getextrema()):
        raise UserError("The mask is empty: paint the area to repaint in white (black keeps the picture).")
    source = Source(
        original, 0, 0, config.strength, original=original, masked_content=config.masked_content,
        init_sha256=init_hash, mask_sha256=file_sha256(config.mask_image),
    )  # fmt: skip
    if config.inpaint_area == "Only masked":
        # Full resolution for the masked area: crop it (plus padding) and work at the model's size.
        crop_size = output_size(config, native, _padded_box(blurred, config))
        region = masks.crop_region(blurred, int(config.inpaint_padding), *crop_size)
        assert region is not None  # the mask is not empty
        source.width, source.height = crop_size
        source.image = original.crop(region).resize(crop_size, Image.LANCZOS)
        source.mask = blurred.crop(region).resize(crop_size, Image.LANCZOS)
        source.region, source.overlay, source.base_for_overlay = region, blurred, original
    else:
        width, height = output_size(config, native, original.size)
        source.width, source.height = width, height
        source.image = masks.resize_to(original, width, height, config.resize_mode)
        source.mask = masks.resize_to(blurred, width, height, config.resize_mode)
        source.overlay, source.base_for_overlay = masks.overlay_mask(source.mask), source.image
    if config.masked_content == "fill":
        source.image = masks.fill_masked(source.image, source.mask)
    return source


def _padded_box(mask: Image.Image, config: Any) -> tuple[int, int]:
    x1, y1, x2, y2 = mask.getbbox() or (0, 0, *mask.size)
    pad = 2 * int(config.inpaint_padding)
    return min(x2 - x1 + pad, mask.width), min(y2 - y1 + pad, mask.height)


# ---------------------------------------------------------------------------------------------- running
class _Run:
    def __init__(self, source: Source, pipe: Any) -> None:
        self.source, self.pipe = source, pipe

    def call(self, **kwargs: Any) -> Any:
        import torch

        src = self.source
        self.pipe._interrupt = False  # a cancelled earlier run must not cancel this one
        output_type = kwargs.pop("output_type", "pil")
        generator = kwargs.get("generator")
        steps = int(kwargs.get("num_inference_steps", 1))
        latents = self._encode(src.image)
        latent_mask = None
        if src.mask is not None:
            latent_mask = self._latent_mask(src.mask, latents)
            if src.masked_content == "latent nothing":
                latents = latents * (1 - latent_mask)
            elif src.masked_content == "latent noise":
                noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(latents)
                latents = latents * (1 - latent_mask) + noise * latent_mask
        if int(steps * src.strength) < 1:
            result = self._decode(latents)  # nothing to denoise: the autoencoder's round trip
        else:
            result = self._denoise(kwargs, latents)
            if result is None:
                return _Output([])
        return _Output([_convert(self._finish(result), output_type)])

    def _denoise(self, kwargs: dict[str, Any], latents: Any) -> Image.Image | None:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        src = self.source
        width, height = kwargs.pop("width", src.width), kwargs.pop("height", src.height)
        if src.mask is None:
            derived = AutoPipelineForImage2Image.from_pipe(self.pipe)
            call = dict(kwargs, image=latents, strength=src.strength)
        else:
            derived = AutoPipelineForInpainting.from_pipe(self.pipe)
            # The masked picture for a 9-channel UNet (diffusers would re-encode the image by sampling).
            masked = self._masked_latents(latents) if is_inpainting_unet(self.pipe) else latents
            call = dict(
                kwargs, image=latents, mask_image=src.mask, masked_image_latents=masked, strength=src.strength,
                width=width, height=height,
            )  # fmt: skip
        derived.set_progress_bar_config(disable=True)
        out = derived(**call, output_type="pil")
        if getattr(derived, "_interrupt", False):
            self.pipe._interrupt = True  # the generator reads the interrupt off its own pipeline
            return None
        return out.images[0]

    def _finish(self, result: Image.Image) -> Image.Image:
        src = self.source
        if src.region is not None:
            return masks.paste_back(result, src.original, src.region, src.overlay)
        if src.overlay is not None and src.base_for_overlay is not None:
            return masks.overlay(result, src.base_for_overlay, src.overlay)
        return result

    # -- autoencoder
    def _vae_dtype_device(self) -> tuple[Any, Any]:
        p = next(self.pipe.vae.parameters())
        return p.dtype, p.device

    def _encode(self, image: Image.Image) -> Any:
        import numpy as np
        import torch

        vae = self.pipe.vae
        dtype, device = self._vae_dtype_device()
        arr = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0
        x = torch.from_numpy(arr)[None]
        with torch.no_grad(), _float32_vae(vae) as run_dtype:
            latents = vae.encode(x.to(device=device, dtype=run_dtype)).latent_dist.mode()
            latents = latents * vae.config.scaling_factor
        return latents.to(dtype)

    def _decode(self, latents: Any) -> Image.Image:
        import numpy as np
        import torch

        vae = self.pipe.vae
        with torch.no_grad(), _float32_vae(vae) as run_dtype:
            pixels = vae.decode(latents.to(run_dtype) / vae.config.scaling_factor).sample
        arr = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(np.ascontiguousarray(arr), "RGB")

    def _latent_mask(self, mask: Image.Image, latents: Any) -> Any:
        import numpy as np
        import torch

        # Exactly the inpaint pipeline's latent mask (binarised at half, then nearest), so what we change
        # inside the mask is never blended back outside it.
        binary = (np.asarray(mask, dtype=np.float32) / 255.0 >= 0.5).astype(np.float32)
        full = torch.from_numpy(binary)[None, None]
        return torch.nn.functional.interpolate(full, size=tuple(latents.shape[-2:])).to(latents)

    def _masked_latents(self, latents: Any) -> Any:
        import numpy as np

        src = self.source
        keep = np.asarray(src.mask, dtype=np.float32)[..., None] < 127.5
        grey = np.where(keep, np.asarray(src.image, dtype=np.float32), 127.5).astype(np.uint8)
        return self._encode(Image.fromarray(grey, "RGB")).to(latents)


@contextlib.contextmanager
def _float32_vae(vae: Any):
    """Run the VAE in float32 for the block when it is in half precision and its config says
    ``force_upcast`` (SDXL's VAE overflows in fp16), as diffusers' pipelines do; yields the dtype to feed it."""
    import torch

    dtype = next(vae.parameters()).dtype
    if dtype == torch.float32 or not getattr(vae.config, "force_upcast", False):
        yield dtype
        return
    vae.to(dtype=torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(dtype=dtype)  # the denoising pipeline decodes with the VAE in the run's dtype (or upcasts itself)


@dataclass
class _Output:
    images: list[Any]


def _convert(image: Image.Image, output_type: str) -> Any:
    if output_type == "np":
        import numpy as np

        return np.asarray(image, dtype=np.float32) / 255.0
    return image
