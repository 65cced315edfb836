"""Image-to-image and inpainting settings inside PNGs, both ways.

Written: AUTOMATIC1111's own keys (``Denoising strength``, ``Resize mode``, ``Mask blur``, ``Inpaint area``,
``Masked area padding``, ``Masked content``) in the ``parameters`` text, and in our JSON record the input
image's and the mask's file name and SHA-256, never their path (a shared PNG must not carry the folders of the
machine that made it). The pictures themselves are not embedded (they are the artist's, often large): reading a
PNG back restores the mode and settings, finds each picture by hash (``recent_inputs``) and names the ones it
cannot find. Records of older versions also stored the absolute path; it is still tried first when read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.generate.config import INPAINT_AREAS, MASKED_CONTENT, RESIZE_MODES

MISSING_KEY = "missing_inputs"  # settings key: one line per input the PNG names but this machine lacks
_INPUT_KEYS = (
    "init_image", "mask_image", "strength", "resize_mode", "mask_blur", "inpaint_area", "inpaint_padding",
    "masked_content",
)  # fmt: skip


def _num(value: float) -> str:
    return f"{float(value):g}"


def image_input_fields(config: Any, source: Any) -> list[tuple[str, str]]:
    """A1111 ``Key: value`` pairs for an img2img / inpaint image (none for text to image)."""
    if source is None or not config.init_image:
        return []
    fields = [("Denoising strength", _num(config.strength))]
    if source.region is None:
        fields.append(("Resize mode", config.resize_mode))
    if config.mask_image:
        fields.append(("Mask blur", str(config.mask_blur)))
        if config.inpaint_area == "Only masked":
            fields += [("Inpaint area", "Only masked"), ("Masked area padding", str(config.inpaint_padding))]
        fields.append(("Masked content", config.masked_content))
    return fields


def image_input_record(config: Any, source: Any) -> dict[str, Any]:
    """Our JSON record's ``inputs``: which pictures were used, by hash (empty for text to image)."""
    if source is None or not config.init_image:
        return {}
    inputs: dict[str, Any] = {
        "mode": config.mode,
        "init_image": _picture_entry(config.init_image, source.init_sha256),
    }
    if config.mask_image:
        inputs["mask"] = _picture_entry(config.mask_image, source.mask_sha256)
    return {"inputs": inputs}


def _picture_entry(path: str, sha256: str) -> dict[str, Any]:
    # The size lets a restore hash only the same-sized files of a folder when the name no longer matches.
    try:
        size: int | None = Path(path).stat().st_size
    except OSError:
        size = None
    return {"name": Path(path).name, "sha256": sha256, **({"bytes": size} if size is not None else {})}


# ---------------------------------------------------------------------------------------------- reading
def restore_from_record(record: dict[str, Any], settings: dict[str, Any], png_folder: Path | None = None) -> None:
    """Copy the input settings of our record into ``settings``, each picture found again by its hash; note the
    ones this machine lacks (the mode still comes back: the setting then holds the bare file name)."""
    config = record.get("config", {})
    inputs = record.get("inputs") or {}
    if not inputs:
        return  # text to image: the defaults (no input picture) are what restores it
    settings.update({k: config[k] for k in _INPUT_KEYS if k in config})
    missing: list[str] = []
    for key, config_key, label in (("init_image", "init_image", "Input image"), ("mask", "mask_image", "Mask")):
        item = inputs.get(key)
        if not item:
            continue
        found, note = find_input(item, str(settings.get(config_key) or ""), png_folder)
        if found is not None:
            settings[config_key] = str(found)
        else:
            settings[config_key] = str(item.get("name") or Path(str(item.get("path") or "")).name)
            missing.append(f"{label} {note}")
    if missing:
        settings[MISSING_KEY] = missing


def find_input(item: dict[str, Any], config_value: str, png_folder: Path | None) -> tuple[Path | None, str]:
    """(the picture a record's input entry names, None; or None, why not) — searched by SHA-256."""
    from app.engine.generate.recent_inputs import (
        find_picture,
        picture_sha256,
        search_folders,
    )

    sha256 = str(item.get("sha256") or "")
    old_path = str(item.get("path") or "")  # written by older versions only
    name = str(item.get("name") or Path(old_path or config_value).name)
    recorded = Path(old_path) if old_path else None
    if recorded is not None and recorded.is_file():
        try:
            if not sha256 or picture_sha256(recorded) == sha256:
                return recorded, ""
        except OSError:
            pass
    size = item.get("bytes") if isinstance(item.get("bytes"), int) else None
    found, changed = find_picture(name, sha256, search_folders(png_folder), size=size)
    if found is not None:
        return found, ""
    which = f"{name} (sha256 {sha256[:12]}…)" if sha256 else name
    if changed is not None or (recorded is not None and recorded.is_file()):
        return None, f"{which} has changed since this picture was made; drop the original on the preview."
    return None, f"{which} not found — drop it on the preview."


def restore_from_a1111(fields: dict[str, str], settings: dict[str, Any]) -> None:
    """A1111's img2img keys into ``settings``; its PNGs never name the input picture, so say so."""
    if "Denoising strength" not in fields or any(k.startswith("Hires") for k in fields):
        return  # text to image (a hires-fix pass also writes a denoising strength)
    try:
        settings["strength"] = min(max(float(fields["Denoising strength"]), 0.0), 1.0)
    except ValueError:
        return
    for key, field, choices in (
        ("resize_mode", "Resize mode", RESIZE_MODES),
        ("inpaint_area", "Inpaint area", INPAINT_AREAS),
        ("masked_content", "Masked content", MASKED_CONTENT),
    ):
        if fields.get(field) in choices:
            settings[key] = fields[field]
    for key, field in (("mask_blur", "Mask blur"), ("inpaint_padding", "Masked area padding")):
        if fields.get(field, "").strip().isdigit():
            settings[key] = int(fields[field])
    what = "an input image and a mask" if "Mask blur" in fields else "an input image"
    settings[MISSING_KEY] = [f"This picture was made from {what} its parameters do not name; pick them again."]
