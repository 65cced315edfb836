"""Does an adapter fit a base model? Its layer shapes against the base's, from the two files' headers only.

A family label can be wrong (a file from elsewhere, or the bundled styles before they had their own family):
the widths of the layers an adapter patches are what decides whether it can apply. Reading only the
safetensors headers keeps this fast enough for a shelf of hundreds of cards, with no torch and no model load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.adapters.info import analyse_keys, read_adapter_info
from app.engine.adapters.keys import COMPONENT_PREFIX, SDXL_COMPONENT_PREFIX, classify_key, sgm_to_diffusers, te_path
from app.engine.errors import AdapterError, UserError
from app.engine.models.families import family_label
from app.engine.safetensors_file import MAX_ADAPTER_HEADER_BYTES, read_header

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
            for key, spec in read_header(
                weights, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES
            ).tensors.items():
                if not key.endswith(".weight") or len(spec.shape) not in (2, 4):
                    continue
                path = key.removesuffix(".weight").replace(".", "_")
                shapes[prefixes[component] + (path if component == "unet" else te_path(path))] = tuple(spec.shape)
    return shapes


def _layers_per_block(base: str | os.PathLike[str]) -> int:
    try:
        lpb = json.loads((Path(base) / "unet" / "config.json").read_text(encoding="utf-8")).get("layers_per_block", 2)
    except (OSError, ValueError):
        return 2
    return int(lpb[0] if isinstance(lpb, list) else lpb)


def _diffusers_name(module: str, layers_per_block: int) -> str:
    """kohya-SGM block names (sd-scripts' SDXL files) as the diffusers paths a folder's weights use."""
    role = classify_key(module + ".alpha")
    return sgm_to_diffusers(module, layers_per_block) if role is not None and role.layout == "kohya-sgm" else module


def adapter_fit(adapter: str | os.PathLike[str], base: str | os.PathLike[str]) -> Fit:
    """Compare every adapter module's (out, in) with the base layer of the same name."""
    info = read_adapter_info(adapter, with_hashes=False)
    layers = base_layer_shapes(base)
    if not layers:
        return Fit(True, 0, "the base is not a diffusers folder: shapes are checked when the adapter loads")
    # Every format's (down, up) shapes as the header gives them (LoHa/LoKr/full: their equivalent pair's).
    keys = analyse_keys(
        read_header(adapter, error=AdapterError, max_header_bytes=MAX_ADAPTER_HEADER_BYTES), Path(adapter).name
    )
    lpb = _layers_per_block(base)
    ins = {_diffusers_name(m, lpb): shape[1] for m, shape in keys["downs"].items()}
    outs = {_diffusers_name(m, lpb): shape[0] for m, shape in keys["ups"].items()}
    checked, bad = 0, []
    for module, width_in in ins.items():
        layer = layers.get(module)
        if layer is None:
            continue
        checked += 1
        # A LoHa on a convolution stores its input side flat (in·kh·kw).
        flat_in = layer[1] * (layer[2] * layer[3] if len(layer) == 4 else 1)
        if outs.get(module) != layer[0] or width_in not in (layer[1], flat_in):
            bad.append(f"{module}: adapter {outs.get(module)}×{width_in}, base layer {layer[0]}×{layer[1]}")
    if bad:
        return Fit(
            False,
            checked,
            f"{len(bad)} of {checked} layers have other shapes in this base (e.g. {bad[0]}); "
            f"the adapter is {family_label(info.family)}",
            bad,
        )
    if checked == 0 and ins:
        return Fit(
            False, 0, f"none of its {len(ins)} layers exist in this base; the adapter is {family_label(info.family)}"
        )
    return Fit(True, checked)


def fit_problem(adapter: str | os.PathLike[str], base: str | os.PathLike[str]) -> str:
    """ "" when the adapter fits (or cannot be checked here), else the reason in one line."""
    try:
        fit = adapter_fit(adapter, base)
    except UserError as err:
        return str(err)
    return "" if fit.fits else fit.reason
