"""Write our adapter files: kohya key layout, real alpha, ``ss_*`` + ModelSpec metadata, fp32, atomic.

Layout decision for SDXL: we write kohya names over *diffusers* module paths
(``lora_unet_down_blocks_1_attentions_0_…``), not the SGM names sd-scripts writes
(``lora_unet_input_blocks_4_1_…``). Both are read by AUTOMATIC1111 (it converts diffusers-path names to
its own), ComfyUI (maps both spellings), InvokeAI (converts SGM names to diffusers paths, passes
diffusers paths through) and diffusers. The diffusers-path form is a lossless rename of the PEFT names
we train with, whereas SGM needs a block-renumbering step whose inverse in diffusers depends on a
heuristic; writing the form every reader handles directly removes that risk.

Tensors are stored as fp32: the file then reproduces the trained UNet bit for bit on CPU (fp16 would
round each weight, a ~1e-3 relative change), at 2× the size of fp16 (a rank-16 SD1.5 attention LoRA is
~12 MB in fp32).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine.adapters.keys import classify_key, kohya_name
from app.engine.adapters.peft_lycoris import network_of, peft_to_lycoris
from app.engine.atomic import atomic_write_bytes
from app.engine.author import get_author
from app.engine.errors import AdapterError
from app.engine.models.families import FAMILIES, family_info
from app.engine.safetensors_file import encode_header, serialize

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image
    from torch import Tensor

FAMILY_ALIASES = {"sd15": "sd1", "sd1.5": "sd1", "sd21": "sd2", "sd2v": "sd2-v"}
THUMBNAIL_PX = 256
# Thumbnails bigger than this as PNG (photos) are stored as JPEG instead, to keep headers small.
_PNG_LIMIT = 96 * 1024
HASH_KEY = "modelspec.hash_sha256"


def normalise_family(family: str) -> str:
    name = FAMILY_ALIASES.get(family, family)
    if name not in FAMILIES:
        raise AdapterError(f"Unknown model family {family!r}; choose one of {', '.join(FAMILIES)}.")
    return name


def thumbnail_data_uri(image: "Image") -> str:
    """A ≤256 px PNG (or JPEG for photographic content) as a ``data:`` URI, as ModelSpec and ComfyUI expect."""
    from PIL import Image as PILImage

    img = image.copy()
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    mime = "image/png"
    if buf.tell() > _PNG_LIMIT:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=90)
        mime = "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _resolution(extra: dict[str, str], default: int) -> str:
    raw = extra.get("ss_resolution", "")
    nums = [int(n) for n in re.findall(r"\d+", raw)]
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) >= 2:
        return f"{nums[0]}x{nums[1]}"
    return f"{default}x{default}"


def peft_to_kohya(
    state_dict: dict[str, "Tensor"], component: str, *, sdxl: bool
) -> dict[str, tuple["Tensor", "Tensor"]]:
    """PEFT ``<path>.lora_A.weight``/``lora_B.weight`` → {kohya module name: (down, up)}."""
    downs: dict[str, Any] = {}
    ups: dict[str, Any] = {}
    for key, tensor in state_dict.items():
        role = classify_key(key)
        if role is None or role.layout != "peft" or role.part == "alpha":
            raise AdapterError(
                f"Cannot save {component} weight {key!r}: expected PEFT LoRA keys (…lora_A.weight / …lora_B.weight).",
                hint="LoRA biases and embedding LoRA are not supported in saved adapters.",
            )
        path = key.removeprefix("base_model.model.").removeprefix(f"{component}.")
        path = re.sub(r"\.lora_[AB](?:\.[\w-]+)?\.weight$", "", path)
        name = kohya_name(component, path, sdxl=sdxl)
        (downs if role.part == "down" else ups)[name] = tensor
    if set(downs) != set(ups):
        missing = sorted(set(downs) ^ set(ups))[:3]
        raise AdapterError(f"Incomplete {component} LoRA state dict: lora_A/lora_B pairs missing for {missing}.")
    return {name: (downs[name], ups[name]) for name in sorted(downs)}


def build_metadata(
    *, family: str | None, rank: int, alpha: float, title: str, trigger_phrase: str, thumbnail: "Image | None",
    description: str, extra: dict[str, str], date: _dt.datetime | None = None,
) -> dict[str, str]:  # fmt: skip
    """``ss_*`` + ModelSpec metadata. ``family=None`` (a bake of custom/tiny-model adapters) omits the keys
    that would claim a base model."""
    now = (date or _dt.datetime.now(_dt.timezone.utc)).replace(microsecond=0)
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": num_text(alpha),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.implementation": "diffusers",
        "modelspec.title": title,
        "modelspec.trigger_phrase": trigger_phrase,
        "modelspec.date": now.isoformat(),
        "modelspec.description": description,
    }
    author = get_author()  # the user's name preference; an explicit modelspec.author in ``extra`` wins below
    if author:
        meta["modelspec.author"] = author
    if family is not None:
        info = family_info(family)
        meta.update({
            "ss_base_model_version": info.ss_base_model_version,
            "ss_v2": str(family in ("sd2", "sd2-v")),
            "ss_v_parameterization": str(info.prediction_type == "v_prediction"),
            "modelspec.architecture": info.modelspec_architecture,
            "modelspec.resolution": _resolution(extra, info.native_resolution),
            "modelspec.prediction_type": "v" if info.prediction_type == "v_prediction" else "epsilon",
        })  # fmt: skip
        if family == "sdxl":  # ModelSpec's convention (and kohya's): an SDXL LoRA targets Stability's code
            meta["modelspec.implementation"] = "https://github.com/Stability-AI/generative-models"
    if thumbnail is not None:
        meta["modelspec.thumbnail"] = thumbnail_data_uri(thumbnail)
    if trigger_phrase:
        meta["modelspec.usage_hint"] = f"Use the trigger phrase '{trigger_phrase}'"
    for key, value in extra.items():
        if key == HASH_KEY:
            continue  # computed, never copied
        meta[str(key)] = value if isinstance(value, str) else str(value)
    return meta


def num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def save_adapter(
    path: str | os.PathLike[str],
    *,
    unet: dict[str, "Tensor"],
    text_encoder: dict[str, "Tensor"] | None = None,
    text_encoder_2: dict[str, "Tensor"] | None = None,
    rank: int,
    alpha: float,
    family: str,
    title: str,
    trigger_phrase: str = "",
    thumbnail: "Image | None" = None,
    description: str = "",
    extra_metadata: dict[str, str] | None = None,
    text_encoder_alpha: float | None = None,
) -> Path:
    """Write PEFT LoRA state dicts as one kohya-layout ``.safetensors`` adapter; returns the path.

    Per module: ``<name>.lora_down.weight`` (= lora_A), ``<name>.lora_up.weight`` (= lora_B) and
    ``<name>.alpha`` = ``alpha``, so the effective scale alpha / (that module's rank) equals PEFT's.
    ``text_encoder_alpha`` (default: ``alpha``) is the text encoders' alpha when they were trained with
    their own LoraConfig. PEFT DoRA (``lora_magnitude_vector``) and LoKr (``lokr_*``) state dicts are written
    in LyCORIS' kohya layout instead (``peft_lycoris.py``), announced as ``ss_network_module = lycoris.kohya``.
    """
    family = normalise_family(family)
    sdxl = family == "sdxl"
    if text_encoder_2 and not sdxl:
        raise AdapterError("A second text encoder's LoRA only exists for SDXL adapters.")
    if rank <= 0 or alpha <= 0 or (text_encoder_alpha is not None and text_encoder_alpha <= 0):
        raise AdapterError(f"Rank and alpha must be positive (rank {rank}, alpha {alpha}).")
    te_alpha = alpha if text_encoder_alpha is None else text_encoder_alpha
    parts = [(c, sd) for c, sd in (("unet", unet), ("text_encoder", text_encoder), ("text_encoder_2", text_encoder_2))
             if sd]  # fmt: skip
    network = next((n for n in (network_of(sd) for _c, sd in parts) if n != "lora"), "lora")
    extra = dict(extra_metadata or {})
    if network != "lora":  # DoRA / LoKr: LyCORIS' layout, announced as its kohya network module
        tensors: dict[str, Any] = {}
        for component, sd in parts:
            a = alpha if component == "unet" else te_alpha
            tensors.update(peft_to_lycoris(sd, component, sdxl=sdxl, rank=rank, alpha=a))
        extra = {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps(lycoris_args(network)), **extra}
        meta = build_metadata(family=family, rank=rank, alpha=alpha, title=title, trigger_phrase=trigger_phrase,
                              thumbnail=thumbnail, description=description, extra=extra)  # fmt: skip
        return write_tensors(path, tensors, meta)
    modules: dict[str, tuple[Any, Any, float]] = {}
    for component, sd in parts:
        a = alpha if component == "unet" else te_alpha
        modules.update({n: (d, u, a) for n, (d, u) in peft_to_kohya(sd, component, sdxl=sdxl).items()})
    if not modules:
        raise AdapterError("Nothing to save: the adapter has no LoRA weights.")
    meta = build_metadata(
        family=family, rank=rank, alpha=alpha, title=title, trigger_phrase=trigger_phrase, thumbnail=thumbnail,
        description=description, extra=extra,
    )  # fmt: skip
    return write_kohya_modules(path, modules, meta)


def lycoris_args(network: str, *, factor: int = -1) -> dict[str, str]:
    """kohya's ``ss_network_args`` for a LyCORIS network (strings, as sd-scripts records command-line args)."""
    if network == "dora":  # LyCORIS' LoRA/LoCon with weight decomposition on the output axis (PEFT's DoRA)
        return {"algo": "lora", "dora_wd": "True", "wd_on_output": "True"}
    if network == "lokr":
        return {"algo": "lokr", "factor": str(factor)}
    return {}


def legacy_hash(tensors: dict[str, Any], meta: dict[str, str]) -> str:
    """kohya's ``sshs_legacy_hash`` (``precalculate_safetensors_hashes``): the old A1111 / additional-networks
    model hash, 8 hex of SHA-256 over bytes 1 MiB … 1 MiB + 64 KiB of the file as safetensors would save it
    with the ``ss_*`` metadata alone (so later edits of user metadata do not change it)."""
    import hashlib

    from safetensors.torch import save

    blob = save(tensors, {k: v for k, v in meta.items() if k.startswith("ss_")})
    return hashlib.sha256(blob[0x100000:0x110000]).hexdigest()[:8]


def write_kohya_modules(
    path: str | os.PathLike[str], modules: dict[str, tuple[Any, Any, float]], meta: dict[str, str]
) -> Path:
    """Write {kohya module name: (down, up, alpha)} as fp32 tensors with ``meta`` plus the tensor hash."""
    import torch

    tensors: dict[str, Any] = {}
    for name, (down, up, module_alpha) in modules.items():
        if down.shape[0] != up.shape[1]:
            raise AdapterError(f"{name}: lora_A rank {down.shape[0]} does not match lora_B rank {up.shape[1]}.")
        tensors[f"{name}.lora_down.weight"] = down.detach().to("cpu", torch.float32).contiguous()
        tensors[f"{name}.lora_up.weight"] = up.detach().to("cpu", torch.float32).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(float(module_alpha), dtype=torch.float32)
    return write_tensors(path, tensors, meta)


def write_tensors(path: str | os.PathLike[str], tensors: dict[str, Any], meta: dict[str, str]) -> Path:
    """Write fp32 CPU ``tensors`` with ``meta`` plus kohya's legacy hash and the tensor-data hash, atomically."""
    if not tensors:
        raise AdapterError("Nothing to save: the adapter has no weights.")
    meta = dict(meta)
    meta["sshs_legacy_hash"] = legacy_hash(tensors, meta)
    specs, data, digest = serialize(tensors)
    meta[HASH_KEY] = f"0x{digest}"
    meta["sshs_model_hash"] = digest  # kohya's / AUTOMATIC1111's name for the same tensor-data hash
    atomic_write_bytes(path, encode_header(meta, specs) + data)
    return Path(path)
