"""The config folder a single-file checkpoint is loaded with, made to say how many channels its UNet takes.

Single files are built from a local diffusers config folder (assets/model-configs/<family>, or the user's
``--config``), which describes a normal text-to-image base. An inpainting checkpoint (A1111's
``sd-v1-5-inpainting.safetensors`` and the like) has the same architecture but for conv_in, which reads 9
channels (latents + mask + masked-picture latents), so diffusers' UNet config must say ``in_channels: 9``
or loading stops at a shape mismatch. The pipeline's ``from_single_file`` has no per-component config
override (extra keyword arguments reach every component, and the VAE has an ``in_channels`` of its own), so
the folder's small files are copied to a temporary folder with that one value changed. Weights in a user's
config folder are never copied: only the configs and the tokenizer files are read from it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_CONFIG_SUFFIXES = (".json", ".txt", ".model")  # configs, CLIP's vocab/merges, sentencepiece tokenizers


@contextlib.contextmanager
def config_for_unet_channels(config_dir: Path, in_channels: int) -> Iterator[Path]:
    """``config_dir`` itself when its UNet config already takes ``in_channels``, else a temporary copy that
    does (removed on exit). A missing or unreadable UNet config is left for diffusers to report."""
    unet_config = config_dir / "unet" / "config.json"
    try:
        data = json.loads(unet_config.read_text(encoding="utf-8"))
        current = int(data.get("in_channels", 4))
    except (OSError, ValueError, TypeError, AttributeError):
        yield config_dir
        return
    if current == in_channels:
        yield config_dir
        return
    with tempfile.TemporaryDirectory(prefix="styleshelf-config-") as tmp:
        copy = Path(tmp) / config_dir.name
        shutil.copytree(config_dir, copy, ignore=_not_configs)
        data["in_channels"] = in_channels
        (copy / "unet" / "config.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        yield copy


def _not_configs(folder: str, names: list[str]) -> set[str]:
    """shutil.copytree's filter: leave out every file that is not a config or tokenizer file (weights)."""
    return {n for n in names if (Path(folder) / n).is_file() and not n.endswith(_CONFIG_SUFFIXES)}
