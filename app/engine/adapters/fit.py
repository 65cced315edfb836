"""Does an adapter fit a base model? Its layer shapes against the base's, from the two files' headers only.

A family label can be wrong (a file from elsewhere, or the bundled styles before they had their own family):
the widths of the layers an adapter patches are what decides whether it can apply. Reading only the
safetensors headers keeps this fast enough for a shelf of hundreds of cards, with no torch and no model load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.adapters.info import read_adapter_info
from app.engine.adapters.keys import COMPONENT_PREFIX, SDXL_COMPONENT_PREFIX, classify_key, te_path
from app.engine.adapters.sftfile import read_header
from app.engine.errors import UserError
from app.engine.models.families import family_label

# diffusers folder component → the component name adapters use
_FOLDERS = {"unet": "unet", "text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2"}


@dataclass
class Fit:
    fits: bool
    checked: int  # adapter modules whose layer exists in the base and was compared
    reason: str = ""  # the first mismatch, in words
    mismatched: list[str] = field(default_factory=list)


def base_layer_shapes(base: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Canonical adapter module name (``lora_unet_…``, ``lora_te_text_model_…``) → weight shape, for a diffusers
    folder. Empty for a single-file checkpoint (its LDM names need a model build to map; loading checks those)."""
    folder = Path(base)
    if not folder.is_dir():
        return {}
    sdxl = (folder / "text_encoder_2").is_dir()
    prefixes = SDXL_COMPONENT_PREFIX if sdxl else COMPONENT_PREFIX
    shapes: dict[str, tuple[int, ...]] = {}
    for sub, component in _FOLDERS.items():
        for weights in sorted((folder / sub).glob("*.safetensors")):
            for key, spec in read_header(weights).tensors.items():
                if not key.endswith(".weight") or len(spec.shape) not in (2, 4):
                    continue
                path = key.removesuffix(".weight").replace(".", "_")
                shapes[prefixes[component] + (path if component == "unet" else te_path(path))] = tuple(spec.shape)
    return shapes


def adapter_fit(adapter: str | os.PathLike[str], base: str | os.PathLike[str]) -> Fit:
    """Compare every adapter module's (out, in) with the base layer of the same name."""
    info = read_adapter_info(adapter, with_hashes=False)
    layers = base_layer_shapes(base)
    if not layers:
        return Fit(True, 0, "the base is not a diffusers folder: shapes are checked when the adapter loads")
    header = read_header(adapter)
    outs: dict[str, int] = {}
    ins: dict[str, int] = {}
    for key, spec in header.tensors.items():
        role = classify_key(key)
        if role is None or role.part == "alpha" or role.layout == "kohya-sgm":
            continue
        if role.part == "down":
            ins[role.module] = spec.shape[1]
        else:
            outs[role.module] = spec.shape[0]
    checked, bad = 0, []
    for module, width_in in ins.items():
        layer = layers.get(module)
        if layer is None:
            continue
        checked += 1
        if (outs.get(module), width_in) != (layer[0], layer[1]):
            bad.append(f"{module}: adapter {outs.get(module)}×{width_in}, base layer {layer[0]}×{layer[1]}")
    if bad:
        return Fit(False, checked, f"{len(bad)} of {checked} layers have other shapes in this base (e.g. {bad[0]}); "
                   f"the adapter is {family_label(info.family)}", bad)
    if checked == 0 and ins:
        return Fit(False, 0, f"none of its {len(ins)} layers exist in this base; the adapter is "
                   f"{family_label(info.family)}")
    return Fit(True, checked)


def fit_problem(adapter: str | os.PathLike[str], base: str | os.PathLike[str]) -> str:
    """"" when the adapter fits (or cannot be checked here), else the reason in one line."""
    try:
        fit = adapter_fit(adapter, base)
    except UserError as err:
        return str(err)
    return "" if fit.fits else fit.reason
