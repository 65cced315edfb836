"""Load a base model (a diffusers folder or a single-file .safetensors checkpoint) onto a device.

Every refusal is a ``ModelLoadError`` with a one-line reason: a missing path, a pickle (never unpickled),
a truncated or corrupt file, a file that is something else (a LoRA, a VAE alone…), a folder without
model_index.json, an unsupported pipeline. Single files load offline: their configs come from
assets/model-configs/<family> (or ``config=``), because diffusers otherwise fetches them from the hub.
A single file whose UNet reads 9 channels (an inpainting checkpoint) loads as an inpainting base, as a
diffusers folder of one does (see config_folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.errors import ModelLoadError
from app.engine.events import EventCallback, Log, ignore_event
from app.engine.models.detect import (
    Detection,
    detect_folder,
    detect_header,
    is_inpainting,
    missing_parts,
    unet_in_channels,
    v_prediction_hint,
)
from app.engine.models.families import FAMILIES, Family
from app.engine.paths import MODEL_CONFIGS_DIR
from app.engine.safetensors_file import PICKLE_SUFFIXES, read_header, require_complete

_DTYPE_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
}


@dataclass
class BaseModel:
    pipe: Any  # StableDiffusionPipeline | StableDiffusionXLPipeline
    family: Family
    path: Path
    name: str
    device: str  # "cpu", "cuda", "cuda:1"…
    dtype: Any  # torch.dtype
    single_file: bool
    prediction_type: str  # epsilon | v_prediction


def pick_device_dtype(device: str | None = None, dtype: Any = None) -> tuple[str, Any]:
    """CUDA → bf16 where supported, else fp16; CPU → fp32. Explicit values win ("fp16", torch.float16…)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device} was asked for, but this torch sees no CUDA GPU.",
            hint="Use the CPU, or install the CUDA build of torch (see the README).",
        )
    if isinstance(dtype, str):
        name = _DTYPE_NAMES.get(dtype.lower())
        if name is None:
            raise ModelLoadError(f"Unknown precision {dtype!r}; use fp32, fp16 or bf16.")
        dtype = getattr(torch, name)
    if dtype is None:
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32  # half precision on CPU is slow and numerically poor
    return device, dtype


def load_base(
    path: str | os.PathLike[str],
    *,
    family: str | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | None = None,
    dtype: Any = None,
    on_event: EventCallback = ignore_event,
) -> BaseModel:
    """Load ``path`` as an SD1 / SD2 / SDXL pipeline on ``device`` in ``dtype`` (defaults: see pick_device_dtype).

    ``family`` overrides detection (only where tensors cannot tell, e.g. sd2 vs sd2-v); ``config`` is a
    local diffusers folder (or folder of configs) used for a single file's architecture.
    """
    path = Path(path)
    if family is not None and family not in FAMILIES:
        raise ModelLoadError(f"Unknown model family {family!r}; use one of {', '.join(FAMILIES)}.")
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    device, dtype = pick_device_dtype(device, dtype)
    if path.is_dir():
        detection = detect_folder(path)
        fam = _resolve_family(detection, family, path.name)
        _check_folder_weights(path)
        on_event(Log(message=f"loading {path.name} ({_kind(fam, detection)}) on {device}"))
        pipe = _guarded(path.name, fam, lambda: _load_folder(path, detection, dtype))
    else:
        if path.suffix.lower() in PICKLE_SUFFIXES or path.suffix.lower() == ".safetensors":
            header = read_header(path, error=ModelLoadError, strict=False)  # refuses pickles and corrupt headers
        else:
            raise ModelLoadError(
                f"{path.name} is not a model StyleShelf can open: give a diffusers folder or a .safetensors file."
            )
        require_complete(header, error=ModelLoadError)
        detection = detect_header(header)
        fam = _resolve_family(detection, family, path.name)
        missing = missing_parts(header, fam)
        if missing:
            raise ModelLoadError(
                f"{path.name} holds a UNet but no {', '.join(missing)}; StyleShelf needs a full checkpoint."
            )
        config_dir = Path(config) if config is not None else MODEL_CONFIGS_DIR / FAMILIES[fam].config_folder
        if family is None and fam in ("sd2", "sd2-v") and config is not None:
            fam = _sd2_with_config(header.metadata, path.name, config_dir, fam)
        if not (config_dir / "model_index.json").exists():
            raise ModelLoadError(f"Config folder {config_dir} has no model_index.json.")
        on_event(Log(message=f"loading {path.name} ({_kind(fam, detection)}, single file) on {device}"))
        in_channels = unet_in_channels(header)
        pipe = _guarded(path.name, fam, lambda: _load_single_file(path, fam, config_dir, dtype, in_channels))
    _require_all_weights(pipe, path.name)
    _apply_prediction_type(pipe, fam)
    pipe = _to_device(pipe, device, path.name)
    return BaseModel(
        pipe=pipe,
        family=fam,
        path=path,
        name=path.stem if path.is_file() else path.name,
        device=device,
        dtype=dtype,
        single_file=path.is_file(),
        prediction_type=str(pipe.scheduler.config.get("prediction_type", "epsilon")),
    )


def _kind(family: Family, detection: Detection) -> str:
    """The family's label, plus 'inpainting model' for a 9-channel UNet (told to the user as it loads)."""
    return FAMILIES[family].label + (" inpainting model" if is_inpainting(detection) else "")


def _resolve_family(detection: Detection, requested: str | None, name: str) -> Family:
    """Accept a caller's family only where the weights cannot tell (sd2 ↔ sd2-v)."""
    if requested is None or requested == detection.family:
        return detection.family
    sd2 = {"sd2", "sd2-v"}
    if requested in sd2 and detection.family in sd2:
        return requested  # type: ignore[return-value]
    raise ModelLoadError(
        f"{name} is {FAMILIES[detection.family].label} ({detection.reason}), not {FAMILIES[requested].label}."
    )


def _sd2_with_config(metadata: dict[str, str], name: str, config_dir: Path, fam: Family) -> Family:
    """With no hint in the file itself, the given config's scheduler decides epsilon vs v."""
    is_v, _why = v_prediction_hint(metadata, name)
    if is_v is not None:
        return fam
    import json

    try:
        sched = json.loads((config_dir / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError):
        return fam
    return "sd2-v" if sched.get("prediction_type") == "v_prediction" else "sd2"


def _check_folder_weights(folder: Path) -> None:
    """Each weighted component must have safetensors weights: .bin files are pickles and stay closed."""
    import json

    index = json.loads((folder / "model_index.json").read_text())
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        entry = index.get(component)
        if not entry or not entry[0]:
            continue
        sub = folder / component
        if not sub.is_dir():
            raise ModelLoadError(f"{folder.name}/ has no {component}/ folder, which model_index.json lists.")
        files = [p.name for p in sub.iterdir() if p.is_file()]
        if any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files):
            continue
        if any(f.endswith(PICKLE_SUFFIXES) for f in files):
            raise ModelLoadError(
                f"{folder.name}/{component}/ has only pickle (.bin) weights; StyleShelf never opens pickles.",
                hint="Re-save the model with safetensors (save_pretrained(..., safe_serialization=True)).",
            )
        raise ModelLoadError(f"{folder.name}/{component}/ has no weights file.")


def _variant(folder: Path) -> str | None:
    """'fp16' when the UNet exists only as a fp16 variant (diffusion_pytorch_model.fp16.safetensors)."""
    unet = folder / "unet"
    if (unet / "diffusion_pytorch_model.safetensors").exists() or (
        unet / "diffusion_pytorch_model.safetensors.index.json"
    ).exists():
        return None
    return "fp16" if any(unet.glob("*.fp16.safetensors")) else None


def _pipeline_class(detection_family: str):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if detection_family == "sdxl" else StableDiffusionPipeline


def _sd_extras(family: str) -> dict[str, Any]:
    # We never load a safety checker: it is 1.2 GB, and StyleShelf runs locally on the user's own prompts.
    if family == "sdxl":
        return {}
    return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _load_folder(folder: Path, detection: Detection, dtype: Any):
    cls = _pipeline_class(detection.family)
    return cls.from_pretrained(
        str(folder),
        dtype=dtype,
        use_safetensors=True,
        local_files_only=True,
        variant=_variant(folder),
        **_sd_extras(detection.family),
    )


def _load_single_file(path: Path, family: str, config_dir: Path, dtype: Any, in_channels: int = 4):
    from app.engine.models.config_folder import config_for_unet_channels

    cls = _pipeline_class(family)
    kwargs = _sd_extras(family)
    kwargs.pop("requires_safety_checker", None)
    if family == "sdxl":
        kwargs["text_encoder_2"] = _sdxl_text_encoder_2(path, config_dir, dtype)
    # The config folder describes a normal base; an inpainting file's UNet reads 9 channels (see config_folder).
    with config_for_unet_channels(config_dir, in_channels) as config:
        return cls.from_single_file(str(path), config=str(config), dtype=dtype, local_files_only=True, **kwargs)


def _sdxl_text_encoder_2(path: Path, config_dir: Path, dtype: Any):
    """SDXL's OpenCLIP-G encoder, converted here: diffusers picks it by width and confuses equal-width encoders."""
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from app.engine.models.ldm_keys import openclip_from_ldm

    prefix = "conditioner.embedders.1.model."
    with safe_open(str(path), framework="pt") as fh:
        raw = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}
    state = openclip_from_ldm(raw, prefix)
    from accelerate import init_empty_weights

    with init_empty_weights():  # no random init of ~700 M parameters that are overwritten next
        model = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder_2")))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelLoadError(
            f"{path.name}: the second text encoder does not match the SDXL architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors).",
            details=f"missing: {missing[:10]}\nunexpected: {unexpected[:10]}",
        )
    return model.to(dtype).eval()


@contextlib.contextmanager
def _quiet_progress():
    """diffusers/transformers draw tqdm bars on stderr while loading; we report through on_event instead."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            dlog.enable_progress_bar()
        if was[1]:
            tlog.enable_progress_bar()


def _guarded(name: str, family: str, load):
    """Turn a library failure while reading a model into a one-line ModelLoadError (traceback in details)."""
    try:
        with _quiet_progress():
            return load()
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError) as err:
        label = FAMILIES[family].label
        mismatch = _shape_mismatch(str(err))
        if mismatch:
            raise ModelLoadError(
                f"{name} does not match the {label} architecture ({mismatch}).",
                hint="For a model of another size, pass its own diffusers config folder.",
                details=traceback.format_exc(),
            ) from err
        raise ModelLoadError(
            f"Could not load {name} as {label}: {_one_line(err)}", details=traceback.format_exc()
        ) from err


_SHAPE_ERRORS = (
    # diffusers: "Cannot load <model> because <param> expected shape torch.Size([..]), but got torch.Size([..])."
    re.compile(r"because (\S+) expected shape torch\.Size\((\[[^\]]*\])\), but got torch\.Size\((\[[^\]]*\])\)"),
    # torch: "size mismatch for <param>: copying a param with shape torch.Size([..]) from checkpoint, the shape
    # in current model is torch.Size([..])" (file shape first here, hence the swap below)
    re.compile(
        r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from checkpoint, "
        r"the shape in current model is torch\.Size\((\[[^\]]*\])\)"
    ),
)


def _shape_mismatch(text: str) -> str:
    for i, pattern in enumerate(_SHAPE_ERRORS):
        m = pattern.search(text)
        if m:
            param, expected, got = (m[1], m[2], m[3]) if i == 0 else (m[1], m[3], m[2])
            return f"{param} is {got} in the file, {expected} in the architecture"
    return ""


def _one_line(err: BaseException) -> str:
    """The gist of a library error: its first line, plus the next when the first only introduces it."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return text[:300]


def _to_device(pipe: Any, device: str, name: str):
    import torch

    try:
        return pipe.to(device)
    except torch.OutOfMemoryError as err:
        pipe.to("cpu")  # give the card back what was moved before it ran out
        raise ModelLoadError(
            f"Not enough memory on {device} for {name}.",
            hint="Close other GPU programs, use fp16, or load on the CPU.",
            details=str(err),
        ) from err


def _require_all_weights(pipe: Any, name: str) -> None:
    """diffusers leaves parameters a checkpoint lacks on the 'meta' device instead of failing: catch it here."""
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, component, None)
        if module is None:
            continue
        empty = [n for n, p in list(module.named_parameters()) + list(module.named_buffers()) if p.is_meta]
        if empty:
            raise ModelLoadError(
                f"{name} lacks {len(empty)} {component} tensors (e.g. {empty[0]}); the file is incomplete or "
                "of another architecture.",
                details="\n".join(empty[:50]),
            )


def _apply_prediction_type(pipe: Any, family: str) -> None:
    """SD2 families fix the prediction type; the scheduler must agree with the family we settled on."""
    if family not in ("sd2", "sd2-v"):
        return
    wanted = FAMILIES[family].prediction_type
    if pipe.scheduler.config.get("prediction_type") != wanted:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=wanted)
