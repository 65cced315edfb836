"""Header-only inspection, hashes and their cache, refusals with reasons, metadata edits."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from app.engine.adapters import (
    AdapterError,
    edit_metadata,
    load_into_pipeline,
    loaded_adapter_names,
    read_adapter_info,
    read_lora_modules,
    save_adapter,
)
from app.engine.paths import user_cache_dir
from app.engine.safetensors_file import read_header
from tests.helpers.peft_probes import load_pipe, unet_probe
from tests.helpers.pickle_trap import trap_fires, write_trapped_pickle

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0"


def _peft(width_in=32, width_out=64, rank=2, seed=0, modules=("attn2.to_k", "attn2.to_v", "attn1.to_q")):
    """A PEFT state dict for tiny-SD1.5 attention projections (cross-attn input 32, channels 64)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for mod in modules:
        fin = width_in if mod.startswith("attn2.to_k") or mod.startswith("attn2.to_v") else width_out
        sd[f"{ATTN}.{mod}.lora_A.weight"] = torch.randn(rank, fin, generator=gen)
        sd[f"{ATTN}.{mod}.lora_B.weight"] = torch.randn(width_out, rank, generator=gen) * 0.1
    return sd


def _kohya_raw(path, modules: dict[str, tuple[int, int, int]], meta=None):
    """A kohya file by hand: {module: (rank, in, out)}."""
    sd = {}
    for name, (r, fin, fout) in modules.items():
        sd[f"{name}.lora_down.weight"] = torch.randn(r, fin)
        sd[f"{name}.lora_up.weight"] = torch.randn(fout, r)
    save_file(sd, str(path), metadata=meta)
    return path


@pytest.fixture(scope="module")
def pipe(tiny_sd15):
    return load_pipe(tiny_sd15)


# --- inspection ----------------------------------------------------------------------------------------


def test_info_from_our_file_and_hashes(tmp_path):
    from PIL import Image

    thumb = Image.new("RGB", (64, 64), (200, 30, 30))
    path = save_adapter(tmp_path / "Warm Light.safetensors", unet=_peft(), rank=2, alpha=1, family="sd1",
                        title="Warm light", trigger_phrase="wrmlt", thumbnail=thumb, description="d",
                        extra_metadata={"modelspec.author": "ana", "modelspec.tags": "light, warm"})  # fmt: skip
    info = read_adapter_info(path)
    assert (info.title, info.trigger_phrase, info.description, info.author) == ("Warm light", "wrmlt", "d", "ana")
    assert info.tags == ["light", "warm"]
    assert (info.family, info.family_source) == ("sd1", "metadata")
    assert info.rank == 2 and info.layout == "kohya" and info.module_count == 3 and info.has_alpha
    assert info.thumbnail_mime == "image/png" and info.thumbnail.startswith(b"\x89PNG")
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.autov2 == info.sha256[:10]
    assert info.tensor_sha256 == hashlib.sha256(data[8 + n :]).hexdigest()
    assert info.metadata["modelspec.hash_sha256"] == "0x" + info.tensor_sha256
    assert info.date.startswith("20") and "T" in info.date


def test_changed_tensor_bytes_are_flagged(tmp_path):
    path = _good(tmp_path)
    assert read_adapter_info(path).warnings == []
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    assert any("does not match the hash recorded" in w for w in read_adapter_info(path).warnings)


def test_hash_cache_is_used_and_invalidated_by_changes(tmp_path):
    path = save_adapter(tmp_path / "a.safetensors", unet=_peft(), rank=2, alpha=2, family="sd1", title="a")
    first = read_adapter_info(path)
    cache_file = user_cache_dir() / "adapter-hashes.json"
    cache = json.loads(cache_file.read_text())
    entry = cache[str(path.resolve())]
    assert entry["sha256"] == first.sha256
    # Prove the cache is read: a poisoned entry with the right size/mtime is believed …
    entry["sha256"] = "f" * 64
    cache_file.write_text(json.dumps(cache))
    assert read_adapter_info(path).sha256 == "f" * 64
    # … and a changed mtime makes it re-hash.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert read_adapter_info(path).sha256 == first.sha256


@pytest.mark.parametrize("width,family", [(768, "sd1"), (1024, "sd2"), (2048, "sdxl"), (32, "unknown")])
def test_family_from_cross_attention_width_when_no_metadata(tmp_path, width, family):
    path = _kohya_raw(tmp_path / "x.safetensors", {f"lora_unet_{ATTN.replace('.', '_')}_attn2_to_k": (2, width, 64)})
    info = read_adapter_info(path)
    assert info.family == family
    assert info.family_source == ("shapes" if family != "unknown" else "unknown")
    assert str(width) in info.family_reason
    assert info.title == "x"  # no metadata: the file name


def test_family_from_other_metadata_and_text_encoders(tmp_path):
    mod = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj": (2, 1024, 1024)}
    assert read_adapter_info(_kohya_raw(tmp_path / "a.safetensors", mod)).family == "sd2"
    assert read_adapter_info(_kohya_raw(tmp_path / "b.safetensors", mod, {"ss_v2": "True"})).family == "sd2"
    te2 = {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (2, 1280, 1280)}
    assert read_adapter_info(_kohya_raw(tmp_path / "c.safetensors", te2)).family == "sdxl"
    meta = {"ss_base_model_version": "sdxl_base_v0-9"}
    info = read_adapter_info(_kohya_raw(tmp_path / "d.safetensors", mod, meta))
    assert info.family == "sdxl" and info.warnings and "sd2" in info.warnings[0]  # contradiction flagged


# --- refusals ------------------------------------------------------------------------------------------


def _good(tmp_path):
    return save_adapter(tmp_path / "good.safetensors", unet=_peft(), rank=2, alpha=2, family="sd1", title="g")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickles_are_refused_without_being_opened(tmp_path, suffix):
    marker = tmp_path / "executed"
    path = write_trapped_pickle(tmp_path / f"evil{suffix}", marker)
    with pytest.raises(AdapterError, match="pickled"):
        read_adapter_info(path)
    assert not marker.exists() and trap_fires(tmp_path)


def _damage(tmp_path, kind):
    good = _good(tmp_path).read_bytes()
    path = tmp_path / f"{kind}.safetensors"
    if kind == "truncated":
        path.write_bytes(good[:-10])
    elif kind == "tiny":
        path.write_bytes(good[:5])
    elif kind == "oversized":
        path.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    elif kind == "malformed":
        path.write_bytes((12).to_bytes(8, "little") + b"not json!!  ")
    elif kind == "pickle-renamed":
        torch.save({"x": torch.zeros(1)}, path)
    elif kind == "empty":
        save_file({}, str(path))
    return path


@pytest.mark.parametrize(
    "kind,reason",
    [("truncated", "truncated"), ("tiny", "truncated"), ("oversized", "damaged or not a safetensors file"),
     ("malformed", "malformed"), ("pickle-renamed", "is a zip archive .*, not a safetensors file"),
     ("empty", "no tensors")],
)  # fmt: skip
def test_damaged_files_are_refused_with_a_reason(tmp_path, kind, reason):
    with pytest.raises(AdapterError, match=reason) as refused:
        read_adapter_info(_damage(tmp_path, kind))
    if kind == "oversized":  # what to do leads; the technical figure waits under "Details"
        assert "Ask for it again" in str(refused.value) and "claims" not in str(refused.value)
        assert "header claims 1,099,511,627,776 bytes" in refused.value.details.lower()


def test_non_lora_weights_are_refused(tmp_path, tiny_sd15):
    from safetensors.torch import load_file

    vae = load_file(str(tiny_sd15 / "vae" / "diffusion_pytorch_model.safetensors"))
    save_file(vae, str(tmp_path / "vae.safetensors"))
    with pytest.raises(AdapterError, match="no LoRA weights.*not a LoRA adapter"):
        read_adapter_info(tmp_path / "vae.safetensors")
    unet = load_file(str(tiny_sd15 / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file(unet, str(tmp_path / "unet.safetensors"))
    with pytest.raises(AdapterError, match="no LoRA weights"):
        read_adapter_info(tmp_path / "unet.safetensors")
    lycoris = {"lora_unet_x.hada_w1_a": torch.zeros(2, 2), "lora_unet_x.hada_w1_b": torch.zeros(2, 2)}
    save_file(lycoris, str(tmp_path / "loha.safetensors"))
    with pytest.raises(AdapterError, match="malformed LyCORIS module lora_unet_x"):  # w2 of the LoHa missing
        read_adapter_info(tmp_path / "loha.safetensors")
    oft = {"lora_unet_x.oft_blocks": torch.zeros(2, 2, 2), "lora_unet_x.alpha": torch.tensor(1.0)}
    save_file(oft, str(tmp_path / "oft.safetensors"))
    with pytest.raises(AdapterError, match=r"uses OFT/BOFT \(orthogonal fine-tuning\)"):
        read_adapter_info(tmp_path / "oft.safetensors")


def test_malformed_pairs_are_refused(tmp_path):
    cases = {
        "rank0": {"lora_unet_a.lora_down.weight": torch.zeros(0, 4), "lora_unet_a.lora_up.weight": torch.zeros(4, 0)},
        "1d": {"lora_unet_a.lora_down.weight": torch.zeros(4), "lora_unet_a.lora_up.weight": torch.zeros(4)},
        "ranks": {"lora_unet_a.lora_down.weight": torch.zeros(2, 4), "lora_unet_a.lora_up.weight": torch.zeros(4, 3)},
        "unpaired": {"lora_unet_a.lora_down.weight": torch.zeros(2, 4)},
    }
    for label, sd in cases.items():
        save_file(sd, str(tmp_path / f"{label}.safetensors"))
        with pytest.raises(AdapterError, match="malformed LoRA"):
            read_adapter_info(tmp_path / f"{label}.safetensors")


def test_nan_adapter_refused_and_name_stays_free(tmp_path, pipe):
    sd = _peft()
    sd[f"{ATTN}.attn1.to_q.lora_B.weight"][3, 1] = float("nan")
    bad = save_adapter(tmp_path / "nan.safetensors", unet=sd, rank=2, alpha=2, family="sd1", title="n")
    read_adapter_info(bad)  # header-only inspection cannot see values …
    with pytest.raises(AdapterError, match="NaN or Inf"):  # … loading does
        load_into_pipeline(pipe, bad, "nan-test")
    assert "nan-test" not in loaded_adapter_names(pipe)
    report = load_into_pipeline(pipe, _good(tmp_path), "nan-test", base_family="sd2")
    assert report.ok and report.matched == 3
    assert any("made for sd1" in w and "base model is sd2" in w for w in report.warnings)  # flagged, not hidden
    pipe.delete_adapters("nan-test")


def test_shape_mismatch_refused_before_loading(tmp_path, pipe):
    before = unet_probe(pipe)
    # Same module names as the tiny SD1.5 UNet, but cross-attention input 768 (a real SD1.5 adapter).
    wrong = save_adapter(tmp_path / "real-sd15.safetensors", unet=_peft(width_in=768), rank=2, alpha=2,
                         family="sd1", title="w")  # fmt: skip
    with pytest.raises(AdapterError, match="does not fit this base model.*attn2_to_[kv]"):
        load_into_pipeline(pipe, wrong, "shape-test")
    assert "shape-test" not in loaded_adapter_names(pipe)
    assert torch.equal(unet_probe(pipe), before)  # nothing was injected


def test_adapter_that_would_do_nothing_is_refused_and_partial_match_reported(tmp_path, pipe):
    none = _kohya_raw(tmp_path / "elsewhere.safetensors", {"lora_unet_not_a_module_to_q": (2, 32, 64)})
    with pytest.raises(AdapterError, match="would do nothing"):
        load_into_pipeline(pipe, none, "nothing")
    assert "nothing" not in loaded_adapter_names(pipe)

    mods = {f"lora_unet_{ATTN.replace('.', '_')}_attn1_to_q": (2, 64, 64), "lora_unet_input_blocks_99_1_x": (2, 4, 4)}
    partial = _kohya_raw(tmp_path / "partial.safetensors", mods)
    report = load_into_pipeline(pipe, partial, "partial")
    assert (report.matched, report.unmatched, report.ok) == (1, 1, False)
    assert any("no counterpart" in w for w in report.warnings)
    with pytest.raises(AdapterError, match="already loaded"):
        load_into_pipeline(pipe, partial, "partial")
    pipe.delete_adapters("partial")


def test_kohya_without_alpha_means_scale_one(tmp_path):
    path = _kohya_raw(tmp_path / "noalpha.safetensors", {"lora_unet_a_to_q": (4, 8, 8)})
    _info, modules = read_lora_modules(path)
    assert modules["lora_unet_a_to_q"].scale == 1.0


# --- metadata editing ----------------------------------------------------------------------------------


def test_edit_metadata_keeps_tensors_and_tensor_hash(tmp_path):
    from PIL import Image

    path = _good(tmp_path)
    before = read_adapter_info(path)
    h0 = read_header(path)
    data0 = path.read_bytes()[h0.data_offset :]
    after = edit_metadata(path, title="New title", trigger_phrase="nwt", description="édité ✓",
                          thumbnail=Image.new("RGB", (300, 300), "blue"))  # fmt: skip
    h1 = read_header(path)
    assert path.read_bytes()[h1.data_offset :] == data0  # tensor bytes identical
    assert h1.tensors == h0.tensors
    assert after.tensor_sha256 == before.tensor_sha256
    assert after.metadata["modelspec.hash_sha256"] == before.metadata["modelspec.hash_sha256"]
    assert after.autov2 != before.autov2
    assert (after.title, after.trigger_phrase, after.description) == ("New title", "nwt", "édité ✓")
    assert after.thumbnail and after.metadata["ss_network_dim"] == "2"  # other metadata kept
    with safe_open(str(path), "pt") as f:  # still a valid safetensors file for every other reader
        assert f.metadata()["modelspec.title"] == "New title"
    removed = edit_metadata(path, thumbnail=None)
    assert removed.thumbnail is None and removed.tensor_sha256 == before.tensor_sha256
    assert [p.name for p in tmp_path.iterdir()] == ["good.safetensors"]  # no temp files left
    with pytest.raises(AdapterError, match="empty"):
        edit_metadata(path, title="  ")
    assert read_adapter_info(path).title == "New title"
