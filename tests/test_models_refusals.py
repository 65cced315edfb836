"""Every way a base model is refused: one line that says why, no traceback, nothing unpickled, nothing lost."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

from app.engine.errors import ModelLoadError, UserError
from app.engine.models.detect import detect_family
from app.engine.models.loading import load_base
from tests.helpers.pickle_trap import PickleTrap


def _refused(path, match, **kwargs) -> str:
    with pytest.raises(ModelLoadError, match=match) as err:
        load_base(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert isinstance(err.value, UserError)
    return message


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickles_are_refused_and_never_opened(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"state_dict": PickleTrap(marker)}))
    message = _refused(path, "pickle")
    assert "safetensors" in message
    with pytest.raises(ModelLoadError, match="pickle"):
        detect_family(path)
    assert not marker.exists()
    assert path.exists()  # nothing of the user's is removed


def test_missing_path(tmp_path):
    _refused(tmp_path / "nope.safetensors", "does not exist")
    _refused(tmp_path / "no-folder", "does not exist")


def test_unknown_file_type(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    _refused(path, "diffusers folder or a .safetensors")


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty or truncated"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{", "truncated: the file ends inside its header"),
        (b"\xff" * 64, "not a safetensors file"),
        ((20).to_bytes(8, "little") + b"{not json at all!!!}", "corrupt"),
        ((12).to_bytes(8, "little") + b'{"a": "b"}  ', "corrupt"),
    ],
)
def test_corrupt_safetensors(tmp_path, content, match):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    _refused(path, match)


def _write(path, tensors, metadata=None):
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, str(path), metadata=metadata)
    return path


def test_truncated_tensor_data(tmp_path):
    path = _write(tmp_path / "m.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3)})
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    message = _refused(path, "truncated")
    assert "Download or copy it again" in message


@pytest.mark.parametrize(
    "tensors, what",
    [
        (
            {
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320),
                "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (320, 4),
            },
            "LoRA adapter",
        ),
        ({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": (4, 32)}, "LoRA adapter"),
        (
            {
                "encoder.conv_in.weight": (128, 3, 3, 3),
                "decoder.conv_out.weight": (3, 128, 3, 3),
                "quant_conv.weight": (8, 8, 1, 1),
            },
            "VAE alone",
        ),
        ({"first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3)}, "VAE alone"),
        ({"emb_params": (2, 768)}, "textual-inversion embedding"),
        ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "textual-inversion embedding"),
        ({"conv_in.weight": (320, 4, 3, 3), "time_embedding.linear_1.weight": (1280, 320)}, "diffusers UNet"),
        ({"text_model.embeddings.token_embedding.weight": (10, 8)}, "text encoder alone"),
        ({"double_blocks.0.img_attn.norm.key_norm.scale": (128,)}, "Flux or SD3"),
        ({"some.random.tensor": (3,)}, "not a Stable Diffusion checkpoint"),
    ],
)
def test_safetensors_that_are_not_checkpoints_say_what_they_look_like(tmp_path, tensors, what):
    path = _write(tmp_path / "thing.safetensors", tensors)
    message = _refused(path, "not a Stable Diffusion checkpoint")
    assert what in message
    with pytest.raises(ModelLoadError, match=what):
        detect_family(path)


def test_unet_only_checkpoint_names_the_missing_parts(tmp_path):
    path = _write(
        tmp_path / "unet-only.safetensors",
        {
            "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        },
    )
    assert detect_family(path) == "sd1"
    message = _refused(path, "no VAE")
    assert "text encoder" in message


def test_inpainting_checkpoint_is_detected_then_checked_like_any_other(tmp_path):
    """A 9-channel UNet is an inpainting base (it loads: test_img2img_models.py); a file holding only its UNet
    is refused for what it lacks, like a normal one."""
    path = _write(
        tmp_path / "inpaint.safetensors",
        {
            "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3),
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        },
    )
    from app.engine.models.detect import inspect_model

    detection = inspect_model(path)
    assert detection.family == "sd1" and detection.details.get("inpainting") == "true"
    assert "no VAE" in _refused(path, "no VAE")


@pytest.mark.parametrize("channels, kind", [(8, "instruct-pix2pix"), (5, "depth-to-image"), (7, "7 input channels")])
def test_other_conditioned_unets_are_refused(tmp_path, channels, kind):
    path = _write(
        tmp_path / "other.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": (320, channels, 3, 3)}
    )
    assert kind in _refused(path, "text-to-image base model")


def test_sdxl_refiner_checkpoint_is_refused(tmp_path):
    path = _write(
        tmp_path / "refiner.safetensors",
        {
            "model.diffusion_model.label_emb.0.0.weight": (1536, 2560),
            "conditioner.embedders.0.model.positional_embedding": (77, 1280),
        },
    )
    _refused(path, "refiner")


def test_sd2_unclip_checkpoint_is_refused(tmp_path):
    path = _write(
        tmp_path / "unclip.safetensors",
        {
            "model.diffusion_model.label_emb.0.0.weight": (1280, 2048),
            "cond_stage_model.model.token_embedding.weight": (49408, 1024),
        },
    )
    _refused(path, "unCLIP")


def test_wrong_architecture_for_the_config_is_one_line(tiny_sd15, tmp_path):
    """A tiny SD1 file read with the full-size SD1.5 config: the sizes differ, and the user is told so."""
    from app.engine.models.single_file import export_single_file

    path = export_single_file(tiny_sd15, tmp_path / "tiny.safetensors")
    message = _refused(path, "tiny.safetensors does not match the SD 1.x architecture")
    assert "[77, 32] in the file, [77, 768] in the architecture" in message or "in the file" in message


def test_folder_without_model_index(tmp_path, tiny_sd15):
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(empty, "no model_index.json")
    _refused(tiny_sd15 / "unet", "one component of a diffusers model")


def test_unreadable_model_index(tmp_path, tiny_sd15):
    folder = shutil.copytree(tiny_sd15, tmp_path / "badindex")
    (folder / "model_index.json").write_text("{ this is not json")
    _refused(folder, "model_index.json cannot be read")


def test_unsupported_pipeline_class(tmp_path, tiny_sd15):
    folder = shutil.copytree(tiny_sd15, tmp_path / "flux")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "FluxPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    message = _refused(folder, "FluxPipeline")
    assert "Stable Diffusion 1.x, 2.x and SDXL" in message


def test_folder_with_only_pickle_weights(tmp_path, tiny_sd15):
    folder = shutil.copytree(tiny_sd15, tmp_path / "bin")
    marker = tmp_path / "pwned"
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(PickleTrap(marker)))
    _refused(folder, "only pickle")
    assert not marker.exists()


def test_folder_missing_a_component(tmp_path, tiny_sd15):
    folder = shutil.copytree(tiny_sd15, tmp_path / "novae")
    shutil.rmtree(folder / "vae")
    _refused(folder, "no vae/ folder")


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from app.cli import main

    path = tmp_path / "model.ckpt"
    path.write_bytes(pickle.dumps({"x": 1}))
    assert main(["models", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("styleshelf: error:") and "pickle" in err and "\n" not in err


def test_export_refusals_and_atomic_write(tmp_path, tiny_sd15, monkeypatch):
    import safetensors.torch

    from app.engine.models.single_file import export_single_file

    with pytest.raises(ModelLoadError, match="must end in .safetensors"):
        export_single_file(tiny_sd15, tmp_path / "out.ckpt")
    done = export_single_file(tiny_sd15, tmp_path / "out.safetensors")
    with pytest.raises(ModelLoadError, match="already a single file"):
        export_single_file(done, tmp_path / "again.safetensors")

    # A failure half-way through writing leaves the previous file whole and no temporary behind.
    before = done.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(UserError, match="Could not write .*disk full"):
        export_single_file(tiny_sd15, done)
    assert done.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]
