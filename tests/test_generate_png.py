"""PNG parameters without any model: hand-written AUTOMATIC1111 text, our writer, damaged and foreign files."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from app.engine.errors import UserError
from app.engine.generate import LoraRef, insert_trigger_phrases, parse_a1111, read_png_parameters
from app.engine.generate.pngmeta import LoraUse, a1111_parameters, read_png_text, write_png
from tests.helpers.pngs import A1111_TEXT, a1111_png


def test_parse_a1111_fields_prompt_and_multiline_negative():
    parsed = parse_a1111(A1111_TEXT)
    assert parsed["negative"] == "blurry, lowres\ntext, watermark"
    assert parsed["prompt"].endswith("a second prompt line")
    fields = parsed["fields"]
    assert fields["Model"] == "v1-5, pruned"  # quoted value with a comma
    assert fields["Lora hashes"] == "inkWash_v2: 0123456789, paperTexture: abcdef0123"
    assert fields["Version"] == "v1.10.1" and fields["Seed"] == "3141592653"


def test_read_plain_a1111_png_restores_settings_and_stack(tmp_path):
    png = a1111_png(tmp_path / "a1111.png")
    shelf = {"0123456789": str(tmp_path / "ink.safetensors")}  # only one of the two is on this shelf
    asked = []

    def lookup(ref: LoraRef):
        asked.append(ref)
        return shelf.get(ref.autov2)

    settings, entries = read_png_parameters(png, lookup)
    assert settings == {
        "prompt": "masterpiece, (harbour:1.2) at dawn, watercolor\na second prompt line",
        "negative": "blurry, lowres\ntext, watermark",
        "insert_triggers": False,
        "batch_count": 1,
        "steps": 28,
        "guidance": 6.5,
        "seed": 3141592653,
        "width": 512,
        "height": 768,
        "sampler": "DPM++ 2M Karras",
    }
    assert [(e.name, e.weight, e.text_encoder_weight, e.enabled) for e in entries] == [
        ("inkWash_v2", 0.8, None, True),
        ("paperTexture", 0.6, 0.4, True),  # A1111 order is <lora:name:te:unet>
    ]
    assert [e.path for e in entries] == [str(tmp_path / "ink.safetensors"), ""]
    assert [(r.name, r.autov2) for r in asked] == [("inkWash_v2", "0123456789"), ("paperTexture", "abcdef0123")]


def test_our_text_round_trips_through_the_a1111_reader(tmp_path):
    loras = [LoraUse("ink", 0.8, None, "0123456789"), LoraUse("paper, v2", 0.5, 0.25, "abcdef0123")]
    text = a1111_parameters(prompt="harbour", negative="", steps=20, sampler="Euler a", guidance=7.0, seed=1,
                            width=512, height=512, model_hash="6ce0161689", model_name="sd15", loras=loras)  # fmt: skip
    assert text.splitlines()[0] == "harbour <lora:ink:0.8> <lora:paper, v2:0.25:0.5>"
    assert "Negative prompt" not in text  # A1111 leaves the line out when empty
    assert text.splitlines()[1] == (
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: sd15, "
        'Lora hashes: "ink: 0123456789, paper, v2: abcdef0123"'
    )
    png = write_png(tmp_path / "x.png", Image.new("RGB", (8, 8)), text, {"not": "ours"})
    settings, entries = read_png_parameters(png)  # our chunk is not a valid record: the A1111 text is used
    assert settings["prompt"] == "harbour" and settings["sampler"] == "Euler a" and settings["guidance"] == 7.0
    assert [(e.name, e.weight, e.text_encoder_weight) for e in entries] == [
        ("ink", 0.8, None),
        ("paper, v2", 0.5, 0.25),
    ]


def test_damaged_record_falls_back_to_parameters(tmp_path):
    png = a1111_png(tmp_path / "d.png", styleshelf="{broken json")
    settings, _ = read_png_parameters(png)
    assert settings["steps"] == 28


def test_images_without_parameters_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no generation parameters"):
        read_png_parameters(a1111_png(tmp_path / "plain.png", text=None))
    not_png = tmp_path / "n.png"
    not_png.write_text("hello")
    with pytest.raises(UserError, match="not a readable image"):
        read_png_parameters(not_png)
    with pytest.raises(UserError, match="not found"):
        read_png_parameters(tmp_path / "missing.png")
    assert read_png_text(a1111_png(tmp_path / "j.png", extra=json.dumps({"a": 1})))["extra"] == '{"a": 1}'


def test_trigger_phrases_are_prepended_once_in_stack_order():
    assert insert_trigger_phrases("a harbour", ["inkwash", "", "paper"]) == "inkwash, paper, a harbour"
    assert insert_trigger_phrases("an InkWash harbour", ["inkwash", "paper"]) == "paper, an InkWash harbour"
    assert insert_trigger_phrases("", ["inkwash", "inkwash"]) == "inkwash"
    assert insert_trigger_phrases("harbour", []) == "harbour"
