"""What a trained adapter file carries when it is shared: no trace of the training machine's folders."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from app.engine.safetensors_file import read_header
from app.engine.train import train
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, tiny_sd15):
    """One short run whose dataset, base and output all live under a person's home folder, given as absolute paths."""
    home = tmp_path_factory.mktemp("machine") / "home" / "alice"
    data = make_style_set(home / "Pictures" / "my style set", 8, seed=3)
    base = home / "models" / "tiny-base"
    shutil.copytree(tiny_sd15, base)
    out = home / "adapters" / "inky.safetensors"
    cfg = tiny_run(
        data.resolve(),
        base.resolve(),
        out.resolve(),
        steps=2,
        trigger="inky",
        validation_images=2,
        lora_targets="attention+ff+conv",
        description="made at home",
    )
    result = train(cfg)
    return home, cfg, result


def test_no_path_of_the_training_machine_in_the_header(shared_run):
    home, cfg, result = shared_run
    raw = Path(result.adapter).read_bytes()
    header = raw[8 : 8 + int.from_bytes(raw[:8], "little")].decode("utf-8")
    for secret in (str(home), cfg.dataset_dir, cfg.base, cfg.out, str(Path(cfg.base).parent)):
        assert secret not in header, secret
    assert "alice" not in header  # not even the user's name as a folder component
    stored = tomllib.loads(read_header(result.adapter).metadata["styleshelf.train_config"])
    assert stored["dataset_dir"] == "my style set" and stored["base"] == "tiny-base"
    assert stored["out"] == "inky.safetensors"
    from app.engine.generate.identity import base_model_hash

    assert stored["base_hash"] == base_model_hash(cfg.base) and len(stored["base_hash"]) == 10
    assert json.loads(read_header(result.adapter).metadata["ss_tag_frequency"])["my style set"]["inky"] == 8


def a1111_metadata_panel(path) -> dict[str, object]:
    """What AUTOMATIC1111's LoRA metadata panel shows (extensions-builtin/Lora/ui_edit_user_metadata.py
    ``get_metadata_table``), after its header read (sd_models.read_metadata_from_safetensors parses values
    that start with "{" as JSON)."""
    import datetime

    meta: dict[str, object] = {}
    for k, v in read_header(path).metadata.items():
        meta[k] = json.loads(v) if v.startswith("{") else v
    table: dict[str, object] = {}
    for key, label in (
        ("ss_output_name", "Output name"),
        ("ss_sd_model_name", "Model"),
        ("ss_clip_skip", "Clip skip"),
        ("ss_network_module", "Kohya module"),
    ):
        if meta.get(key) is not None and str(meta[key]) != "None":
            table[label] = meta[key]
    if meta.get("ss_training_started_at"):
        table["Date trained"] = datetime.datetime.fromtimestamp(
            float(meta["ss_training_started_at"]), datetime.timezone.utc
        ).strftime("%Y-%m-%d %H:%M")
    buckets = meta.get("ss_bucket_info")
    if isinstance(buckets, dict) and "buckets" in buckets:
        resolutions: dict[str, int] = {}
        for bucket in buckets["buckets"].values():
            w, h = bucket["resolution"]
            resolutions[f"{h}x{w}"] = resolutions.get(f"{h}x{w}", 0) + int(bucket["count"])
        table["Resolution"] = ", ".join(sorted(resolutions, key=resolutions.get, reverse=True))
    count = sum(int(p.get("img_count", 0)) for p in (meta.get("ss_dataset_dirs") or {}).values())
    if count:
        table["Dataset size"] = count
    tags = meta.get("ss_tag_frequency") or {}
    table["Tags"] = sorted({t for folder in tags.values() for t in folder})
    return table


def test_a1111_metadata_panel_finds_every_field(shared_run):
    import time

    _home, cfg, result = shared_run
    panel = a1111_metadata_panel(result.adapter)
    assert panel["Output name"] == "inky" and panel["Model"] == "tiny-base" and panel["Clip skip"] == "1"
    assert panel["Kohya module"] == "networks.lora"
    assert panel["Date trained"] == time.strftime(
        "%Y-%m-%d %H:%M", time.gmtime(float(read_header(result.adapter).metadata["ss_training_started_at"]))
    )
    assert panel["Resolution"] == "64x64" and panel["Dataset size"] == 6  # 8 images, 2 held out for validation
    assert "inky" in panel["Tags"]
    meta = read_header(result.adapter).metadata
    assert json.loads(meta["ss_dataset_dirs"]) == {"my style set": {"n_repeats": 1, "img_count": 6}}
    started, finished = float(meta["ss_training_started_at"]), float(meta["ss_training_finished_at"])
    assert time.time() - 600 < started <= finished <= time.time()
    assert 0 <= int(meta["ss_session_id"]) < 2**32
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "4"}
    assert len(meta["sshs_legacy_hash"]) == 8 and meta["sshs_model_hash"] == meta["modelspec.hash_sha256"][2:]


def test_legacy_hash_is_kohyas(tmp_path):
    """kohya's precalculate_safetensors_hashes on the same tensors and ss_* metadata, in a file > 1 MiB
    (below that size the 64 KiB window at 1 MiB is empty and every file shares one value)."""
    import hashlib

    import torch
    from safetensors.torch import load_file, save

    from app.engine.adapters import save_adapter

    gen = torch.Generator().manual_seed(0)
    big = {
        "down_blocks.0.attn1.to_q.lora_A.weight": torch.randn(8, 20000, generator=gen),
        "down_blocks.0.attn1.to_q.lora_B.weight": torch.randn(20000, 8, generator=gen),
    }
    path = save_adapter(
        tmp_path / "big.safetensors",
        unet=big,
        rank=8,
        alpha=8,
        family="sd1",
        title="big",
        extra_metadata={"ss_seed": "1"},
    )
    meta = read_header(path).metadata
    blob = save(load_file(str(path)), {k: v for k, v in meta.items() if k.startswith("ss_")})
    assert len(blob) > 0x110000
    assert meta["sshs_legacy_hash"] == hashlib.sha256(blob[0x100000:0x110000]).hexdigest()[:8]
    assert meta["sshs_legacy_hash"] != hashlib.sha256(b"").hexdigest()[:8]


def test_export_writes_a1111_sidecar_and_import_reads_one(shared_run, tmp_path):
    from app.engine.adapters import read_adapter_info
    from app.engine.safetensors_file import rewrite_metadata
    from app.engine.shelf.library import Library

    _home, _cfg, result = shared_run
    lib = Library.default()
    imported = lib.import_file(result.adapter)
    dest = lib.export(imported.path, tmp_path / "out")
    side = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert dest == tmp_path / "out.safetensors"
    assert side["activation text"] == "inky" and side["sd version"] == "SD1"
    assert side["description"] == "made at home"

    # A file from A1111 whose trigger lives only in its sidecar: the shelf copy gets it in its header.
    bare = tmp_path / "theirs.safetensors"
    shutil.copyfile(result.adapter, bare)
    meta = dict(read_header(bare).metadata)
    meta.update({"modelspec.trigger_phrase": "", "modelspec.description": "", "ss_seed": "7"})
    rewrite_metadata(bare, meta)
    (tmp_path / "theirs.json").write_text(
        json.dumps({"activation text": "zqx style", "description": "from A1111", "sd version": "SD1"}), encoding="utf-8"
    )
    lib.remove(imported.path)
    got = lib.import_file(bare)
    assert (got.trigger_phrase, got.description) == ("zqx style", "from A1111")
    assert read_adapter_info(got.path).tensor_sha256 == read_adapter_info(bare).tensor_sha256
