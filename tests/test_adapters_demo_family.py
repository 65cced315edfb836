"""The demo model's own family: detected from its shapes, written into its adapters, refused on real bases."""

from __future__ import annotations

import glob
import json

import pytest
import torch
from safetensors.torch import save_file

from app.engine.adapters import load_into_pipeline, pipeline_family, read_adapter_info
from app.engine.adapters.fit import adapter_fit, fit_problem
from app.engine.errors import AdapterError
from app.engine.models.detect import detect_family
from app.engine.paths import DEMO_MODEL_DIR, REPO_ROOT
from app.engine.safetensors_file import read_header, rewrite_metadata

BUNDLED = sorted(glob.glob(str(REPO_ROOT / "styles" / "*" / "*.safetensors")))
ATTN = "lora_unet_mid_block_attentions_0_transformer_blocks_0"


@pytest.fixture(scope="module")
def sd1_shaped(tmp_path_factory):
    """A small diffusers folder whose UNet attends to 768-wide text like SD 1.x (what makes a base SD1 to every
    tool), with the demo model's other widths: the cheapest base on which a demo adapter's labels AND shapes
    are both wrong."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    demo = StableDiffusionPipeline.from_pretrained(str(DEMO_MODEL_DIR), safety_checker=None)
    config = dict(demo.unet.config)
    config.update(cross_attention_dim=768, block_out_channels=(64, 128, 256))
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config)
    pipe = StableDiffusionPipeline(
        vae=demo.vae,
        text_encoder=demo.text_encoder,
        tokenizer=demo.tokenizer,
        unet=unet,
        scheduler=demo.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    folder = tmp_path_factory.mktemp("bases") / "sd1-shaped"
    pipe.save_pretrained(folder)
    return folder, pipe


def _sd1_adapter(path, *, meta=None):
    """kohya LoRA for SD1.5's mid-block attention: 1280 channels, 768-wide cross-attention."""
    sd = {}
    for mod, fin in (("attn1_to_q", 1280), ("attn2_to_k", 768)):
        sd[f"{ATTN}_{mod}.lora_down.weight"] = torch.randn(4, fin)
        sd[f"{ATTN}_{mod}.lora_up.weight"] = torch.randn(1280, 4)
    save_file(sd, str(path), metadata=meta or {"ss_base_model_version": "sd_v1"})
    return path


def test_the_demo_model_is_its_own_family_and_tiny_models_stay_sd1(tiny_sd15):
    assert detect_family(DEMO_MODEL_DIR) == "demo"
    assert detect_family(tiny_sd15) == "sd1"  # same cross-attention width 32, but no 128-channel block


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.split("/")[-1])
def test_bundled_styles_are_labelled_demo_and_their_tensors_are_untouched(path):
    meta = read_header(path).metadata
    assert meta["ss_base_model_version"] == "styleshelf-demo"
    assert meta["modelspec.architecture"] == "styleshelf-demo-v1/lora"
    info = read_adapter_info(path)
    assert (info.family, info.warnings) == ("demo", [])
    assert info.tensor_sha256 == meta["sshs_model_hash"] == meta["modelspec.hash_sha256"].removeprefix("0x")
    assert adapter_fit(path, DEMO_MODEL_DIR).fits and adapter_fit(path, DEMO_MODEL_DIR).checked > 50


def test_shelf_inspect_names_the_demo_family_and_checks_shapes_against_a_base(capsys, sd1_shaped):
    from app.cli import main as cli_main

    assert cli_main(["shelf", "inspect", BUNDLED[0], "--base", str(DEMO_MODEL_DIR)]) == 0
    out = capsys.readouterr().out
    assert "StyleShelf demo" in out and "fits demo-model" in out and "yes (" in out
    assert cli_main(["shelf", "inspect", BUNDLED[0], "--json", "--base", str(sd1_shaped[0])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "demo" and "StyleShelf demo" in report["compatibility"]
    assert report["fits_base"]["fits"] is False and "other shapes" in report["fits_base"]["reason"]


def test_a_mislabelled_file_is_caught_by_its_shapes(tmp_path):
    """The bundled styles as they were shipped before (sd_v1 labels on demo-shaped tensors)."""
    old = tmp_path / "old.safetensors"
    old.write_bytes(open(BUNDLED[0], "rb").read())
    meta = dict(read_header(old).metadata)
    meta.update({"ss_base_model_version": "sd_v1", "modelspec.architecture": "stable-diffusion-v1/lora"})
    rewrite_metadata(old, meta)
    info = read_adapter_info(old)
    assert info.family == "demo" and info.family_source == "shapes"
    assert "metadata says sd1" in info.warnings[0]


def test_demo_adapters_are_refused_on_an_sd1_base_and_the_reverse(tmp_path, sd1_shaped):
    folder, pipe = sd1_shaped
    assert pipeline_family(pipe) == "sd1"
    with pytest.raises(AdapterError, match=r"StyleShelf demo adapter .*base model is SD 1\.x"):
        load_into_pipeline(pipe, BUNDLED[0], "demo-style")
    assert fit_problem(BUNDLED[0], folder)

    sd1 = _sd1_adapter(tmp_path / "sd1.safetensors")
    assert read_adapter_info(sd1).family == "sd1"
    from app.engine.generate.generator import Generator
    from app.engine.shelf.stack import StackEntry

    gen = Generator(str(DEMO_MODEL_DIR))
    with pytest.raises(AdapterError, match=r"SD 1\.x adapter .*base model is StyleShelf demo"):
        gen.apply_stack([StackEntry(path=str(sd1), weight=1.0)])
    assert "other shapes" in fit_problem(sd1, DEMO_MODEL_DIR)


def test_shapes_decide_the_fit_not_only_the_label(tmp_path, sd1_shaped):
    folder, pipe = sd1_shaped
    sd15_width = _sd1_adapter(tmp_path / "sd15.safetensors")  # SD 1.5's 1280-wide mid block: not this base's 256
    fit = adapter_fit(sd15_width, folder)
    assert not fit.fits and fit.checked == 2 and "1280×1280, base layer 256×256" in fit.reason
    sd = {
        f"{ATTN}_attn2_to_k.lora_down.weight": torch.randn(2, 768),
        f"{ATTN}_attn2_to_k.lora_up.weight": torch.randn(256, 2),
    }
    fitting = tmp_path / "fits.safetensors"
    save_file(sd, str(fitting), metadata={"ss_base_model_version": "sd_v1"})
    assert adapter_fit(fitting, folder).fits
    assert load_into_pipeline(pipe, fitting, "fits").matched == 1


def test_training_on_the_demo_model_writes_the_demo_family(tmp_path):
    from app.engine.train import TrainConfig, train
    from tests.helpers.datasets import make_style_set

    data = make_style_set(tmp_path / "set", 4, seed=2)
    out = tmp_path / "mine.safetensors"
    train(
        TrainConfig(
            dataset_dir=str(data),
            base=str(DEMO_MODEL_DIR),
            out=str(out),
            steps=1,
            rank=2,
            resolution=64,
            batch_size=2,
            checkpoint_every=0,
            validation_images=0,
            thumbnail=False,
            cpu_threads=1,
        )
    )
    meta = read_header(out).metadata
    assert (meta["ss_base_model_version"], meta["modelspec.architecture"]) == (
        "styleshelf-demo",
        "styleshelf-demo-v1/lora",
    )
    assert meta["modelspec.resolution"] == "64x64" and read_adapter_info(out).family == "demo"


def test_fit_reads_lycoris_and_sgm_named_files(tmp_path, tiny_sdxl):
    """LoHa factors and sd-scripts' SDXL block names are compared by their layer shapes too."""
    from app.engine.adapters.keys import diffusers_to_sgm

    mod = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    loha = {
        f"{mod}.hada_w1_a": torch.randn(64, 2),
        f"{mod}.hada_w1_b": torch.randn(2, 64),
        f"{mod}.hada_w2_a": torch.randn(64, 2),
        f"{mod}.hada_w2_b": torch.randn(2, 64),
    }
    save_file(loha, str(tmp_path / "loha.safetensors"))
    fit = adapter_fit(tmp_path / "loha.safetensors", tiny_sdxl)
    assert fit.checked == 1 and fit.fits  # tiny SDXL: cross-attention 64 wide, 64 channels in block 1
    sd = dict(loha)
    sd[f"{mod}.hada_w1_b"] = torch.randn(2, 48)
    sd[f"{mod}.hada_w2_b"] = torch.randn(2, 48)
    save_file(sd, str(tmp_path / "narrow.safetensors"))
    assert not adapter_fit(tmp_path / "narrow.safetensors", tiny_sdxl).fits
    sgm = diffusers_to_sgm(mod, 2)
    assert sgm != mod
    save_file(
        {f"{sgm}.lora_down.weight": torch.randn(2, 64), f"{sgm}.lora_up.weight": torch.randn(64, 2)},
        str(tmp_path / "sgm.safetensors"),
    )
    fit = adapter_fit(tmp_path / "sgm.safetensors", tiny_sdxl)
    assert fit.fits and fit.checked == 1


def test_exported_demo_style_tells_a1111_it_is_not_sd1(tmp_path):
    from app.engine.shelf.library import Library

    dest = Library.default().export(BUNDLED[0], tmp_path / "style")
    side = json.loads(dest.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["sd version"] == "Unknown"  # A1111 lists every file with metadata as SD1 unless told
    assert side["activation text"] == read_adapter_info(BUNDLED[0]).trigger_phrase != ""
