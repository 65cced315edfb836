"""The shelf library, presets and the `styleshelf shelf` CLI on small real adapter files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from app.cli import main as cli_main
from app.engine.adapters import read_adapter_info, save_adapter
from app.engine.errors import UserError
from app.engine.paths import user_data_dir
from app.engine.shelf.library import DuplicateAdapterError, Library
from app.engine.shelf.names import safe_stem
from app.engine.shelf.presets import delete_preset, list_presets, load_preset, save_preset
from app.engine.shelf.stack import Stack, StackEntry
from tests.helpers.pickle_trap import trap_fires, write_trapped_pickle

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"


def _adapter(path, seed, title, trigger="", family="sd1"):
    gen = torch.Generator().manual_seed(seed)
    sd = {
        f"{ATTN}.lora_A.weight": torch.randn(2, 32, generator=gen),
        f"{ATTN}.lora_B.weight": torch.randn(64, 2, generator=gen),
    }
    return save_adapter(path, unet=sd, rank=2, alpha=1, family=family, title=title, trigger_phrase=trigger)


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    return {
        "warm": _adapter(src / "warm.safetensors", 1, "Warm light", "wrm"),
        "cool": _adapter(src / "cool.safetensors", 2, "Cool light"),
        "src": src,
    }


def _lib(tmp_path, *extra):
    bundled = tmp_path / "bundled"
    bundled.mkdir(exist_ok=True)
    return Library(extra, bundled_folder=bundled)


def test_safe_stem_defuses_path_tricks():
    assert safe_stem("../../etc/passwd") == "etc_passwd"
    assert safe_stem("..") == "adapter" and safe_stem("") == "adapter"
    assert safe_stem("C:\\Windows\\evil") == "C__Windows_evil"
    assert safe_stem("CON") == "_CON" and safe_stem("a\x00b") == "a_b"
    assert safe_stem("水彩 style (v2)") == "水彩 style (v2)"
    assert len(safe_stem("x" * 500)) == 100


def test_a_new_style_gets_the_same_safe_file_name_from_the_gui_and_the_cli():
    from app.engine import facade
    from app.engine.shelf.names import adapter_file_name
    from app.engine.train.config import TrainConfig

    assert adapter_file_name("Ink  test") == "Ink-test.safetensors"
    assert adapter_file_name("../CON") == "_CON.safetensors" and adapter_file_name("..") == "style.safetensors"
    assert adapter_file_name("水彩 v1.5") == "水彩-v1.5.safetensors"
    gui = facade.new_adapter_path("Ink test")
    cli = TrainConfig(dataset_dir="d", base="b", name="Ink test").resolved_out()
    assert gui == cli and gui.parent.name == "adapters"


def test_import_copies_validates_and_detects_duplicates(tmp_path, files):
    lib = _lib(tmp_path)
    info = lib.import_file(files["warm"])
    dest = user_data_dir() / "adapters" / "warm.safetensors"
    assert info.path == str(dest) and dest.read_bytes() == files["warm"].read_bytes()
    # Same weights under another name and with edited metadata is still a duplicate.
    twin = files["src"] / "warm-copy.safetensors"
    twin.write_bytes(files["warm"].read_bytes())
    from app.engine.adapters import edit_metadata

    edit_metadata(twin, title="Renamed")
    with pytest.raises(DuplicateAdapterError, match="already on the shelf as warm.safetensors") as err:
        lib.import_file(twin)
    assert err.value.existing == dest
    # A different adapter with a clashing file name gets a new name, never overwrites.
    other = files["src"] / "sub"
    other.mkdir()
    clash = _adapter(other / "warm.safetensors", 9, "Other warm")
    assert lib.import_file(clash).path == str(dest.with_name("warm-2.safetensors"))
    # A hostile file name stays inside the shelf folder.
    evil = files["src"] / "..evil name?.safetensors"
    evil.write_bytes(files["cool"].read_bytes())
    assert lib.import_file(evil).path == str(dest.with_name("evil name.safetensors"))

    results = lib.import_files([files["warm"], tmp_path / "missing.safetensors", files["src"]])
    assert [r.status for r in results] == ["duplicate", "refused", "refused"]
    assert "no such file" in results[1].reason


def test_scan_lists_all_folders_and_reports_refused_files_as_skipped(tmp_path, files):
    team = tmp_path / "team"
    (team / "nested").mkdir(parents=True)
    _adapter(team / "nested" / "ink.safetensors", 3, "Ink", family="sdxl")
    (team / "broken.safetensors").write_bytes(b"\x05\x00\x00")
    (team / ".ink.safetensors.123.tmp").write_bytes(b"partial")  # an interrupted atomic write: ignored
    lib = _lib(tmp_path, team)
    lib.import_file(files["warm"])
    (tmp_path / "bundled" / "pastel.safetensors").write_bytes(files["cool"].read_bytes())

    report = lib.scan_report(with_hashes=False)
    entries = {e.name: e for e in report.entries}
    assert set(entries) == {"warm", "pastel", "ink"}  # adapters only
    assert [entries[n].folder for n in ("warm", "pastel", "ink")] == ["user", "bundled", "extra"]
    assert entries["ink"].family == "sdxl" and entries["warm"].trigger_phrase == "wrm"
    [broken] = report.skipped  # out of the list, with its reason
    assert broken.path == team / "broken.safetensors" and "truncated" in broken.reason
    # Header-only listing never hashes; hashes already cached (the imported file) are shown.
    assert entries["pastel"].tensor_sha256 == "" and entries["warm"].tensor_sha256 != ""
    hashed = {e.name: e for e in lib.scan()}
    assert hashed["pastel"].tensor_sha256 == read_adapter_info(files["cool"]).tensor_sha256

    assert lib.find("Warm light").path.name == "warm.safetensors"  # by title
    assert lib.find(hashed["ink"].autov2[:8]).name == "ink"  # by hash prefix
    with pytest.raises(UserError, match="No adapter named"):
        lib.find("nothing")


def test_export_remove_and_presets(tmp_path, files):
    lib = _lib(tmp_path)
    lib.import_file(files["warm"])
    out = tmp_path / "out"
    out.mkdir()
    exported = lib.export("warm", out)
    assert exported == out / "warm.safetensors" and exported.read_bytes() == files["warm"].read_bytes()
    assert read_adapter_info(exported).trigger_phrase == "wrm"  # self-contained: metadata travels along
    with pytest.raises(UserError, match="already exists"):
        lib.export("warm", out)
    assert lib.export("warm", out, overwrite=True) == exported
    with pytest.raises(UserError, match="safetensors"):
        lib.export("warm", out / "warm.ckpt")

    (tmp_path / "bundled" / "pastel.safetensors").write_bytes(files["cool"].read_bytes())
    with pytest.raises(UserError, match="only deletes adapters in your own shelf"):
        lib.remove("pastel")
    assert (tmp_path / "bundled" / "pastel.safetensors").exists()
    removed = lib.remove("warm")
    assert not removed.exists()

    warm_hash = read_adapter_info(files["cool"]).tensor_sha256
    stack = Stack([StackEntry("/gone/cool.safetensors", weight=0.6, text_encoder_weight=0.2, sha256=warm_hash),
                   StackEntry(str(files["warm"]), enabled=False, weight=-1.5)])  # fmt: skip
    path = save_preset("Ink + «soft»", stack)
    assert path.parent == user_data_dir() / "presets" and json.loads(path.read_text())["name"] == "Ink + «soft»"
    assert list_presets() == ["Ink + «soft»"]
    assert load_preset("Ink + «soft»").to_dict() == stack.to_dict()
    restored = lib.load_preset("Ink + «soft»")  # the moved file is found again by its tensor hash
    assert restored.entries[0].path == str(tmp_path / "bundled" / "pastel.safetensors")
    assert restored.entries[1].weight == -1.5 and not restored.entries[1].enabled
    path.write_text("{not json")
    with pytest.raises(UserError, match="damaged"):
        load_preset("Ink + «soft»")
    delete_preset("Ink + «soft»")
    with pytest.raises(UserError, match="No preset"):
        load_preset("Ink + «soft»")


def test_cli_list_inspect_import_export_bake(tmp_path, files, capsys, monkeypatch):
    monkeypatch.setattr("app.engine.shelf.library.BUNDLED_STYLES_DIR", tmp_path / "bundled")
    assert cli_main(["shelf", "import", str(files["warm"]), str(files["cool"])]) == 0
    assert cli_main(["shelf", "import", str(files["warm"])]) == 2  # duplicate: non-zero, reason on stderr
    assert "already on the shelf" in capsys.readouterr().err

    assert cli_main(["shelf", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(e["name"] for e in listed) == ["cool", "warm"]

    assert cli_main(["shelf", "inspect", "warm", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "sd1" and report["layout"] == "kohya" and report["rank"] == 2
    assert report["checks"]["tensors_finite"] and report["scales"] == [0.5]
    assert report["autov2"] == report["sha256"][:10] and report["on_shelf"]

    out = tmp_path / "house.safetensors"
    assert cli_main(["shelf", "bake", "--out", str(out), "warm:0.5", "Cool light:-1"]) == 0
    baked = read_adapter_info(out)
    assert baked.ranks == [4] and json.loads(baked.metadata["styleshelf.bake"])["sources"][1]["weight"] == -1.0
    assert cli_main(["shelf", "bake", "--out", str(tmp_path / "s.safetensors"), "--rank", "1", "warm", "cool"]) == 0
    assert read_adapter_info(tmp_path / "s.safetensors").ranks == [1]

    assert cli_main(["shelf", "export", "cool", str(tmp_path / "shared.safetensors")]) == 0
    assert (tmp_path / "shared.safetensors").read_bytes() == files["cool"].read_bytes()

    team = tmp_path / "team"
    team.mkdir()
    _adapter(team / "ink.safetensors", 5, "Ink")
    capsys.readouterr()
    assert cli_main(["shelf", "list", "--folder", str(team), "--json"]) == 0
    assert {e["name"]: e["folder"] for e in json.loads(capsys.readouterr().out)}["ink"] == "extra"

    before = read_adapter_info(user_data_dir() / "adapters" / "warm.safetensors")
    assert cli_main(["shelf", "edit", "warm", "--title", "Warmer", "--trigger", "wrm2"]) == 0
    after = read_adapter_info(before.path)
    assert (after.title, after.trigger_phrase) == ("Warmer", "wrm2")
    assert after.tensor_sha256 == before.tensor_sha256 and after.autov2 != before.autov2
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv,reason",
    [
        (["shelf", "inspect", "missing.safetensors"], "no such file"),
        (["shelf", "bake", "--out", "x.safetensors", "nope:1"], "No adapter named 'nope'"),
        (["shelf", "bake", "--out", "x.safetensors", "--mode", "svd", "nope"], "needs --rank"),
        (["shelf", "export", "nope", "."], "No adapter named"),
    ],
)
def test_cli_bad_input_exits_nonzero_with_one_line(argv, reason, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


def test_cli_refuses_a_pickle_in_a_subprocess(tmp_path):
    marker = tmp_path / "executed"
    evil = write_trapped_pickle(tmp_path / "style.ckpt", marker)
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "shelf", "inspect", str(evil)], capture_output=True, text=True
    )
    assert run.returncode == 2 and "pickled" in run.stderr and not marker.exists()
    assert trap_fires(tmp_path)  # the marker's absence means something: unpickling the file would create it
