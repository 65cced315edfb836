"""load_base on diffusers folders: family, device/dtype choice, overrides; detect_family stays header-only."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from app.engine.errors import ModelLoadError
from app.engine.events import Log
from app.engine.models.detect import detect_family, inspect_model, v_prediction_hint
from app.engine.models.loading import BaseModel, load_base, pick_device_dtype


@pytest.fixture(scope="module")
def tiny_sd2(tmp_path_factory):
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd2", "sd2", seed=0)


@pytest.mark.parametrize(
    "fixture, family, prediction, pipeline",
    [
        ("tiny_sd15", "sd1", "epsilon", "StableDiffusionPipeline"),
        ("tiny_sd2", "sd2", "epsilon", "StableDiffusionPipeline"),
        ("tiny_sd2v", "sd2-v", "v_prediction", "StableDiffusionPipeline"),
        ("tiny_sdxl", "sdxl", "epsilon", "StableDiffusionXLPipeline"),
    ],
)
def test_folder_loads_with_its_family(request, fixture, family, prediction, pipeline):
    from diffusers.utils import logging as dlog

    folder = request.getfixturevalue(fixture)
    assert detect_family(folder) == family
    bars_before = dlog.is_progress_bar_enabled()
    events = []
    base = load_base(folder, on_event=events.append)
    assert isinstance(base, BaseModel)
    assert (base.family, base.prediction_type, type(base.pipe).__name__) == (family, prediction, pipeline)
    assert (base.device, base.dtype, base.single_file, base.name) == ("cpu", torch.float32, False, folder.name)
    assert base.pipe.unet.device.type == "cpu" and base.pipe.unet.dtype == torch.float32
    assert getattr(base.pipe, "safety_checker", None) is None
    assert any(isinstance(e, Log) and folder.name in e.message for e in events)
    assert dlog.is_progress_bar_enabled() == bars_before  # silenced while loading only, then restored


def test_device_and_dtype_choice(monkeypatch):
    if not torch.cuda.is_available():
        assert pick_device_dtype() == ("cpu", torch.float32)
    assert pick_device_dtype("cpu", "bf16") == ("cpu", torch.bfloat16)
    assert pick_device_dtype("cpu", torch.float16) == ("cpu", torch.float16)
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device_dtype("cuda")
    # A CUDA machine: bf16 where the card supports it, else fp16 (checked without a GPU by patching torch.cuda).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_device_dtype() == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_device_dtype() == ("cuda", torch.float16)
    assert pick_device_dtype("cuda:1", "fp32") == ("cuda:1", torch.float32)
    with pytest.raises(ModelLoadError, match="precision"):
        pick_device_dtype("cpu", "int3")


def test_explicit_dtype_is_applied(tiny_sd15):
    base = load_base(tiny_sd15, dtype="bf16")
    assert base.dtype == torch.bfloat16
    assert base.pipe.unet.dtype == torch.bfloat16 and base.pipe.text_encoder.dtype == torch.bfloat16


def test_family_override_only_where_weights_cannot_tell(tiny_sd2v, tiny_sd15):
    as_eps = load_base(tiny_sd2v, family="sd2")
    assert (as_eps.family, as_eps.prediction_type) == ("sd2", "epsilon")
    with pytest.raises(ModelLoadError, match="is SD 1.x") as err:
        load_base(tiny_sd15, family="sdxl")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="Unknown model family"):
        load_base(tiny_sd15, family="sd3")


def test_fp16_variant_only_folder_loads(tiny_sd15, tmp_path):
    """Hub folders often hold only diffusion_pytorch_model.fp16.safetensors."""
    folder = shutil.copytree(tiny_sd15, tmp_path / "variant")
    for sub, stem in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        (folder / sub / f"{stem}.safetensors").rename(folder / sub / f"{stem}.fp16.safetensors")
    base = load_base(folder)
    assert base.family == "sd1"


def test_detect_family_reads_only_the_header(tmp_path, tiny_sd15):
    """Cut a checkpoint right after its header: detection still works, loading refuses it as truncated."""
    from app.engine.models.single_file import export_single_file

    full = export_single_file(tiny_sd15, tmp_path / "full.safetensors")
    data = full.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:header_end])
    assert detect_family(cut) == "sd1"
    assert inspect_model(cut).details["tensors"] == inspect_model(full).details["tensors"]
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load_base(cut, config=tiny_sd15)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "metadata, name, expected",
    [
        ({}, "v2-1_768-ema-pruned.safetensors", True),
        ({}, "v2-1_512-ema-pruned.safetensors", None),
        ({}, "mymodel-v.safetensors", True),
        ({}, "anime_vpred_v2.safetensors", True),
        ({}, "model-v1-5.safetensors", None),
        ({"modelspec.prediction_type": "v"}, "a.safetensors", True),
        ({"modelspec.prediction_type": "epsilon"}, "sd21-768.safetensors", False),  # metadata beats the name
        ({"modelspec.architecture": "stable-diffusion-v2-768-v"}, "a.safetensors", True),
        ({"modelspec.architecture": "stable-diffusion-v2-512"}, "a.safetensors", False),
    ],
)
def test_v_prediction_hints(metadata, name, expected):
    assert v_prediction_hint(metadata, name)[0] is expected


def test_folder_family_from_real_configs(tmp_path):
    """The shipped skeletons are diffusers folders too: detection by cross-attention width and scheduler."""
    from app.engine.paths import MODEL_CONFIGS_DIR

    found = {
        name: inspect_model(MODEL_CONFIGS_DIR / name).family for name in ("sd15", "sd21-base", "sd21-v", "sdxl-base")
    }
    assert found == {"sd15": "sd1", "sd21-base": "sd2", "sd21-v": "sd2-v", "sdxl-base": "sdxl"}
    # An SDXL refiner (no first text encoder) is refused by name.
    refiner = shutil.copytree(MODEL_CONFIGS_DIR / "sdxl-base", tmp_path / "refiner")
    index = json.loads((refiner / "model_index.json").read_text())
    index["_class_name"], index["text_encoder"] = "StableDiffusionXLImg2ImgPipeline", [None, None]
    (refiner / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="refiner"):
        detect_family(refiner)


def test_out_of_gpu_memory_is_one_line(tiny_sd15, monkeypatch):
    """Simulated: a CUDA machine whose card is full. The model goes back to the CPU and the user is told."""
    from diffusers import StableDiffusionPipeline

    real_to = StableDiffusionPipeline.to
    moved = []

    def to(self, *args, **kwargs):
        moved.append(args[0] if args else kwargs.get("device"))
        if str(moved[-1]).startswith("cuda"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(StableDiffusionPipeline, "to", to)
    with pytest.raises(ModelLoadError, match="Not enough memory on cuda") as err:
        load_base(tiny_sd15)
    assert "\n" not in str(err.value) and "out of memory" in err.value.details
    assert moved == ["cuda", "cpu"]
