"""Text encoders we write load in transformers 4.x too: CLIP keys under ``text_model.``, weights unchanged."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from app.engine.paths import DEMO_MODEL_DIR


def _v4_names(model) -> set[str]:
    """transformers 4.x's key names for a CLIP text model: the 5.x ones under ``text_model.`` (the projection of
    CLIPTextModelWithProjection sits beside it, at the top level)."""
    names = set()
    for key in model.state_dict():
        names.add(key if key.startswith(("text_model.", "text_projection")) else "text_model." + key)
    return names


@pytest.mark.parametrize("fixture", ["tiny_sd15", "tiny_sdxl"])
def test_tiny_folders_use_the_layout_both_transformers_read(request, fixture):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from app.engine.models.tiny import build_tiny_pipeline

    folder = request.getfixturevalue(fixture)
    memory = build_tiny_pipeline("sd15" if fixture == "tiny_sd15" else "sdxl", seed=0)
    for sub, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
        if not (folder / sub).is_dir():
            continue
        keys = set(load_file(str(folder / sub / "model.safetensors")))
        assert all(k.startswith(("text_model.", "text_projection")) for k in keys)
        assert keys == _v4_names(getattr(memory, sub))
        loaded, report = cls.from_pretrained(str(folder / sub), output_loading_info=True)
        assert not report["missing_keys"] and not report["unexpected_keys"]
        for (name, a), b in zip(getattr(memory, sub).state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), name


def test_demo_model_text_encoder_uses_text_model_keys_and_loads_completely():
    from transformers import CLIPTextModel

    keys = set(load_file(str(DEMO_MODEL_DIR / "text_encoder" / "model.safetensors")))
    assert keys and all(k.startswith("text_model.") for k in keys)
    model, report = CLIPTextModel.from_pretrained(str(DEMO_MODEL_DIR / "text_encoder"), output_loading_info=True)
    assert not report["missing_keys"] and not report["unexpected_keys"]
    assert keys == _v4_names(model)


def test_flat_files_are_rewritten_with_identical_tensors(tmp_path):
    from safetensors.torch import save_file

    from app.engine.models.te_layout import prefix_text_encoder_keys

    (tmp_path / "text_encoder").mkdir()
    flat = {"encoder.layers.0.mlp.fc1.weight": torch.randn(4, 3), "final_layer_norm.bias": torch.randn(3)}
    save_file(flat, str(tmp_path / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    assert prefix_text_encoder_keys(tmp_path) == [tmp_path / "text_encoder" / "model.safetensors"]
    back = load_file(str(tmp_path / "text_encoder" / "model.safetensors"))
    assert set(back) == {"text_model." + k for k in flat}
    assert all(torch.equal(flat[k], back["text_model." + k]) for k in flat)
    assert prefix_text_encoder_keys(tmp_path) == []  # already in that layout: untouched
