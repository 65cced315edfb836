"""The offline CLIP tokenizer and the tiny model kit."""

from __future__ import annotations

import json

import pytest

from app.engine.paths import TOKENIZER_DIR


def test_real_clip_tokenizer_ids():
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR))
    assert len(tok) == 49408
    assert tok.model_max_length == 77
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    # Words outside the byte alphabet still round-trip (BPE merges are real, not a toy vocabulary).
    ids = tok("watercolour landscape golden hour").input_ids
    assert tok.decode(ids, skip_special_tokens=True) == "watercolour landscape golden hour"
    assert len(ids) < 2 + len("watercolour landscape golden hour") // 2  # merged, not spelled out


def test_tokenizer_files_are_consistent():
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text())
    merges = (TOKENIZER_DIR / "merges.txt").read_text().splitlines()
    assert merges[0].startswith("#version")
    assert len(merges) - 1 == 48894
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407


def test_make_tiny_sd15_is_a_loadable_diffusers_folder(tiny_sd15):
    from diffusers import StableDiffusionPipeline

    assert (tiny_sd15 / "model_index.json").exists()
    assert (tiny_sd15 / "unet" / "diffusion_pytorch_model.safetensors").exists()
    size_mb = sum(p.stat().st_size for p in tiny_sd15.rglob("*") if p.is_file()) / 1e6
    assert size_mb < 40
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd15)
    assert _draw_64(pipe, "a red circle").shape == (1, 64, 64, 3)


def test_make_tiny_sdxl_loads(tiny_sdxl):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert _draw_64(pipe, "a star").shape == (1, 64, 64, 3)


def test_make_tiny_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    from app.engine.models.tiny import make_tiny

    a = make_tiny(tmp_path / "a", "sd15", seed=3)
    b = make_tiny(tmp_path / "b", "sd15", seed=3)
    c = make_tiny(tmp_path / "c", "sd15", seed=4)
    wa = load_file(a / "unet" / "diffusion_pytorch_model.safetensors")
    wb = load_file(b / "unet" / "diffusion_pytorch_model.safetensors")
    wc = load_file(c / "unet" / "diffusion_pytorch_model.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert any((wa[k] != wc[k]).any() for k in wa)


def test_cli_make_tiny(tmp_path):
    from app.cli import main

    assert main(["models", "make-tiny", str(tmp_path / "m"), "--family", "sd15", "--seed", "1"]) == 0
    assert (tmp_path / "m" / "model_index.json").exists()


@pytest.mark.parametrize("family", ["nope"])
def test_cli_rejects_unknown_family(family, capsys):
    from app.cli import main

    with pytest.raises(SystemExit):
        main(["models", "make-tiny", "/tmp/x", "--family", family])


def _draw_64(pipe, prompt: str):
    """Two denoising steps at 64 px, seed 0, as a numpy batch."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return pipe(prompt, num_inference_steps=2, height=64, width=64, generator=generator, output_type="np").images
