"""The architecture config skeletons in assets/model-configs/: real SD sizes, offline, in sync with the script."""

from __future__ import annotations

import json

import pytest

from app.engine.models.families import FAMILIES
from app.engine.paths import MODEL_CONFIGS_DIR

FOLDERS = ("sd15", "sd21-base", "sd21-v", "sdxl-base")


def _count(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _empty_models(folder):
    """Build each component from its config on the meta device: exact sizes, no memory, no weights."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = MODEL_CONFIGS_DIR / folder
    with init_empty_weights():
        models = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder")),
        }
        if (root / "text_encoder_2").exists():
            models["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(root / "text_encoder_2")
            )
    return models


@pytest.mark.parametrize(
    "folder, unet_m, text_m",
    [
        ("sd15", 859.5, 123.1),  # SD 1.5: 859.52 M UNet, CLIP ViT-L/14 text tower
        ("sd21-base", 865.9, 340.4),  # SD 2.1: OpenCLIP ViT-H/14 text tower, 23 of 24 layers
        ("sd21-v", 865.9, 340.4),
        ("sdxl-base", 2567.5, 123.1),  # SDXL base: 2.567 B UNet
    ],
)
def test_config_sizes_match_the_published_models(folder, unet_m, text_m):
    models = _empty_models(folder)
    assert _count(models["unet"]) == pytest.approx(unet_m, abs=0.1)
    assert _count(models["vae"]) == pytest.approx(83.65, abs=0.01)
    assert _count(models["text_encoder"]) == pytest.approx(text_m, abs=0.1)
    if folder == "sdxl-base":
        assert _count(models["text_encoder_2"]) == pytest.approx(694.7, abs=0.1)  # OpenCLIP bigG + projection


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "demo"])
def test_each_family_has_a_consistent_config_folder(family):
    info = FAMILIES[family]
    root = MODEL_CONFIGS_DIR / info.config_folder
    index = json.loads((root / "model_index.json").read_text())
    unet = json.loads((root / "unet" / "config.json").read_text())
    scheduler = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    assert unet["cross_attention_dim"] == info.cross_attention_dim
    assert unet["sample_size"] * 8 == info.native_resolution
    assert scheduler.get("prediction_type", "epsilon") == info.prediction_type
    expected_class = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    assert index["_class_name"] == expected_class
    # No component may point at weights we do not ship (the loader would look for them).
    assert index.get("safety_checker", [None])[0] is None and index.get("feature_extractor", [None])[0] is None


@pytest.mark.parametrize(
    "folder, sub, pad",
    [
        ("sd15", "tokenizer", "<|endoftext|>"),
        ("sd21-v", "tokenizer", "!"),
        ("sdxl-base", "tokenizer", "<|endoftext|>"),
        ("sdxl-base", "tokenizer_2", "!"),
    ],
)
def test_tokenizers_are_the_real_clip_bpe_with_the_right_pad(folder, sub, pad):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(MODEL_CONFIGS_DIR / folder / sub))
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert tok.pad_token == pad
    ids = tok("a photo of a cat", padding="max_length").input_ids
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert ids[7] == (0 if pad == "!" else 49407) and len(ids) == 77


def test_committed_configs_match_the_generator_script(tmp_path):
    """assets/model-configs is generated; a hand edit that the script does not know about is a drift."""
    import importlib.util

    from app.engine.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("write_model_configs", REPO_ROOT / "scripts/write_model_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_all(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(MODEL_CONFIGS_DIR) for p in MODEL_CONFIGS_DIR.rglob("*") if p.is_file())
    assert fresh == committed
    for rel in fresh:
        assert (tmp_path / rel).read_bytes() == (MODEL_CONFIGS_DIR / rel).read_bytes(), rel


def test_demo_family_facts_match_the_bundled_demo_model():
    """The demo family has no config skeleton of its own (its model is a diffusers folder): its shape facts are
    the bundled model's."""
    from app.engine.paths import REPO_ROOT

    info = FAMILIES["demo"]
    unet = json.loads((REPO_ROOT / "assets" / "demo-model" / "unet" / "config.json").read_text())
    assert unet["cross_attention_dim"] == info.cross_attention_dim == 32
    assert info.native_resolution == 64 and info.ss_base_model_version == "styleshelf-demo"
