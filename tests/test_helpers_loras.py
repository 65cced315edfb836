"""The test adapters (tests/helpers/loras.py) are real: non-zero, both parts, the metadata asked for."""

from __future__ import annotations

from tests.helpers.loras import make_lora


def test_made_adapters_are_not_empty(tiny_sd15, tmp_path):
    from safetensors import safe_open

    path = make_lora(tiny_sd15, tmp_path / "x.safetensors", family="sd1", seed=1, text_encoder=True, trigger="xyz")
    with safe_open(str(path), "pt") as f:
        ups = [f.get_tensor(k) for k in f.keys() if k.endswith("lora_up.weight")]
        keys = list(f.keys())
        meta = f.metadata()
    assert ups and all(float(t.abs().sum()) > 0 for t in ups)
    assert any(k.startswith("lora_te_") for k in keys) and any(k.startswith("lora_unet_") for k in keys)
    assert meta["modelspec.trigger_phrase"] == "xyz"
    assert "modelspec.thumbnail" not in meta


def test_shelf_card_says_whether_an_adapter_has_a_text_encoder_part(sd15_loras):
    from app.engine import facade

    assert facade.adapter_card(str(sd15_loras["c"])).has_text_encoder
    assert not facade.adapter_card(str(sd15_loras["a"])).has_text_encoder
    listed = {c.path: c for c in facade.list_adapters()}  # the library's entries carry it too
    assert all(not c.has_text_encoder for c in listed.values() if "styles" in c.path)  # bundled: UNet only


def test_a_thumbnail_is_stored_when_asked(tiny_sd15, tmp_path):
    from app.engine.safetensors_file import read_header

    path = make_lora(tiny_sd15, tmp_path / "t.safetensors", seed=2, title="T", thumbnail=True)
    meta = read_header(path).metadata
    assert meta["modelspec.thumbnail"].startswith("data:image/") and meta["modelspec.title"] == "T"
