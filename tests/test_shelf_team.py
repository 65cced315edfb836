"""Working as a team: stack files, authors, version findings, on small real adapter files and the real CLI."""

from __future__ import annotations

import json

import pytest
import torch

from app.cli import main as cli_main
from app.engine.adapters import edit_metadata, read_adapter_info, save_adapter
from app.engine.author import get_author, set_author
from app.engine.errors import UserError
from app.engine.shelf.library import Library
from app.engine.shelf.stack import StackEntry
from app.engine.shelf.stack_file import open_stack_file, read_stack_file, save_stack_file
from app.engine.shelf.versions import BY_HASH, BY_NAME, MISSING, resolve_entries

ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"


def make_adapter(path, seed, title, trigger=""):
    gen = torch.Generator().manual_seed(seed)
    sd = {
        f"{ATTN}.lora_A.weight": torch.randn(2, 32, generator=gen),
        f"{ATTN}.lora_B.weight": torch.randn(64, 2, generator=gen),
    }
    return save_adapter(path, unet=sd, rank=2, alpha=1, family="sd1", title=title, trigger_phrase=trigger)


@pytest.fixture
def team(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    ink = make_adapter(share / "ink-house.safetensors", 1, "Ink house")
    paper = make_adapter(share / "paper.safetensors", 2, "Paper")
    return {"share": share, "ink": ink, "paper": paper, "lib": Library([share], bundled_folder=bundled)}


def _entry(lib, ref, weight, te=None):
    e = lib.find(ref)
    return StackEntry(str(e.path), weight=weight, text_encoder_weight=te, name=e.name, sha256=e.tensor_sha256)


def test_stack_file_round_trips_and_is_listed_beside_adapters(team):
    lib = team["lib"]
    set_author("Ana Lima")
    entries = [_entry(lib, "ink-house", 0.8, te=0.5), _entry(lib, "paper", -0.25)]
    entries[1].enabled = False
    path = save_stack_file(team["share"], "Ink house / night", entries, description="our look")
    assert path.parent == team["share"] and path.name == "Ink house _ night.stack.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "styleshelf-stack-file" and doc["version"] == 1 and doc["author"] == "Ana Lima"
    assert [e["order"] for e in doc["entries"]] == [1, 2] and "path" not in doc["entries"][0]
    back = read_stack_file(path)
    assert (back.title, back.author, back.description) == ("Ink house / night", "Ana Lima", "our look")
    assert [(e.name, e.sha256, e.weight, e.text_encoder_weight, e.enabled) for e in back.entries] == [
        ("ink-house", entries[0].sha256, 0.8, 0.5, True),
        ("paper", entries[1].sha256, -0.25, None, False),
    ]
    assert back.titles == {0: "Ink house", 1: "Paper"}
    assert [p.name for _k, p in lib.stack_files()] == [path.name]
    with pytest.raises(UserError, match="already exists"):
        save_stack_file(team["share"], "Ink house / night", entries)
    assert save_stack_file(team["share"], "Ink house / night", entries[:1], overwrite=True) == path
    assert len(read_stack_file(path).entries) == 1


def test_stack_file_resolves_by_hash_after_rename_and_names_missing(team, tmp_path):
    lib = team["lib"]
    path = save_stack_file(team["share"], "house", [_entry(lib, "ink-house", 1.0), _entry(lib, "paper", 0.5)])
    moved = team["share"] / "sub" / "renamed-ink.safetensors"
    moved.parent.mkdir()
    team["ink"].rename(moved)
    team["paper"].unlink()
    _stack, res = open_stack_file(path, lib)
    assert [r.how for r in res] == [BY_HASH, MISSING]
    assert res[0].entry.path == str(moved) and res[0].note == ""
    assert res[1].entry.path == "" and "paper is not on the shelf" in res[1].note
    # The stack's own folder is searched even when it is not a shelf folder.
    elsewhere = Library([], bundled_folder=tmp_path / "bundled")
    _stack, res = open_stack_file(path, elsewhere)
    assert res[0].entry.path == str(moved)


def test_name_fallback_says_the_version_changed_and_offers_the_old_one(team, tmp_path):
    lib = team["lib"]
    old_sha = lib.find("ink-house").tensor_sha256
    path = save_stack_file(team["share"], "house", [_entry(lib, "ink-house", 1.0)])
    keep = tmp_path / "old" / "ink-house-v1.safetensors"
    keep.parent.mkdir()
    keep.write_bytes(team["ink"].read_bytes())
    make_adapter(team["ink"], 7, "Ink house")  # a teammate retrained it: same name, new weights
    new_sha = read_adapter_info(team["ink"]).tensor_sha256
    assert new_sha != old_sha
    # Old version still on the shelf (another folder): used, and the current one is named.
    with_old = Library([team["share"], keep.parent], bundled_folder=tmp_path / "bundled")
    _s, [r] = open_stack_file(path, with_old)
    assert r.how == BY_HASH and r.entry.path == str(keep) and r.older_path == str(keep)
    assert r.current_path == str(team["ink"]) and "earlier version of ink-house" in r.note
    # Old version gone: the current file by name, with the note.
    keep.unlink()
    _s, [r] = open_stack_file(path, lib)
    assert r.how == BY_NAME and r.entry.path == str(team["ink"]) and r.entry.sha256 == new_sha
    assert "earlier version of ink-house, which is no longer on the shelf" in r.note


def test_same_title_from_another_author_is_not_a_newer_version(team, tmp_path):
    set_author("Ana")
    lib = team["lib"]
    theirs = tmp_path / "ben" / "ink-house.safetensors"
    theirs.parent.mkdir()
    set_author("Ben")
    make_adapter(theirs, 9, "Ink house")
    set_author("Ana")
    make_adapter(team["ink"], 1, "Ink house")  # same weights as before, now with Ana as author
    both = Library([team["share"], theirs.parent], bundled_folder=tmp_path / "bundled")
    entries = both.scan()
    assert sorted(e.info.author for e in entries if e.title == "Ink house") == ["Ana", "Ben"]
    [r] = resolve_entries([_entry(lib, str(team["ink"]), 1.0)], entries)
    assert r.how == BY_HASH and r.note == ""


def test_damaged_or_newer_stack_files_are_refused_with_a_reason(tmp_path):
    bad = tmp_path / "x.stack.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="not a readable stack file"):
        read_stack_file(bad)
    bad.write_text(json.dumps({"format": "styleshelf-stack-file", "version": 9, "entries": []}), encoding="utf-8")
    with pytest.raises(UserError, match="newer StyleShelf"):
        read_stack_file(bad)
    bad.write_text(
        json.dumps({"format": "styleshelf-stack-file", "version": 1, "entries": [{"name": "a", "strength": "loud"}]}),
        encoding="utf-8",
    )
    with pytest.raises(UserError, match="strength is not a number"):
        read_stack_file(bad)
    bad.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(UserError, match="not a StyleShelf stack file"):
        read_stack_file(bad)


def test_author_preference_is_written_into_trained_baked_and_edited_files(tmp_path):
    from app.engine.shelf.bake import bake

    assert get_author() == ""
    plain = make_adapter(tmp_path / "plain.safetensors", 1, "Plain")
    assert read_adapter_info(plain).author == ""
    set_author("  Ana   Lima ")
    assert get_author() == "Ana Lima"
    made = make_adapter(tmp_path / "made.safetensors", 2, "Made")
    assert read_adapter_info(made).author == "Ana Lima"
    baked = bake([StackEntry(str(made), weight=0.5)], tmp_path / "baked.safetensors")
    assert read_adapter_info(baked).author == "Ana Lima"
    set_author("Ben")
    edited = edit_metadata(made, title="Made, fixed")
    assert edited.author == "Ana Lima"  # the maker stays the author
    assert edited.metadata["styleshelf.modified_by"] == "Ben" and edited.metadata["styleshelf.modified"]
    assert edit_metadata(plain, title="Plain 2").author == "Ben"  # no author yet: the editor becomes it
    with pytest.raises(UserError, match="too long"):
        set_author("x" * 101)


def test_cli_stack_save_show_and_author(team, capsys, monkeypatch):
    monkeypatch.delenv("STYLESHELF_ADAPTER_PATH", raising=False)
    share = str(team["share"])
    assert cli_main(["shelf", "author", "Ana"]) == 0
    assert cli_main(["shelf", "stack", "save", "ink-house", "ink-house:0.8", "paper", "--folder", share,
                     "--description", "house style"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    path = team["share"] / "ink-house.stack.json"
    assert f"saved {path} (2 adapters)" in out
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["author"] == "Ana" and [(e["name"], e["strength"]) for e in doc["entries"]] == [
        ("ink-house", 0.8),
        ("paper", 1.0),
    ]
    team["paper"].unlink()
    assert cli_main(["shelf", "stack", "show", str(path), "--folder", share]) == 0
    out = capsys.readouterr().out
    assert "ink-house by Ana" in out and "paper" in out and "NOT FOUND" in out and "paper is not on the shelf" in out
    assert cli_main(["shelf", "stack", "show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["resolved"] for e in shown["entries"]] == ["hash", "missing"]
    assert cli_main(["shelf", "list", "--folder", share]) == 0
    assert "ink-house.stack.json" in capsys.readouterr().out
