"""Generation on a shared folder (tiny SD1.5, CPU): vanished files, files replaced in place, version warnings,
and `generate --stack`."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from app.cli import main as cli_main
from app.engine import facade
from app.engine.events import CancelToken, Log
from app.engine.generate import GenerateConfig, Generator
from app.engine.generate.identity import adapter_identity
from app.engine.shelf.library import Library
from app.engine.shelf.stack import StackEntry
from app.engine.shelf.stack_file import save_stack_file
from tests.helpers.loras import make_lora


def pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def params(stack, **kw):
    base = dict(prompt="a lighthouse", steps=2, width=64, height=64, seed=11, preview_every=0)
    base.update(kw)
    return GenerateConfig(stack=list(stack), **base)


@pytest.fixture(scope="module")
def gen(tiny_sd15):
    return Generator(tiny_sd15, max_loaded_adapters=4)


def test_a_vanished_file_is_left_out_with_a_warning_not_an_error(gen, tiny_sd15, tmp_path):
    kept = make_lora(tiny_sd15, tmp_path / "kept.safetensors", family="sd1", seed=4)
    gone = make_lora(tiny_sd15, tmp_path / "gone.safetensors", family="sd1", seed=5)
    [only_kept] = gen.generate(params([StackEntry(str(kept), weight=0.9)], out_dir=str(tmp_path / "a")))
    gone.unlink()
    events: list = []
    stack = [StackEntry(str(kept), weight=0.9), StackEntry(str(gone), weight=0.7, name="gone style")]
    [image] = gen.generate(params(stack, out_dir=str(tmp_path / "b")), on_event=events.append)
    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert any(w.startswith("gone style: the file is gone") and "left out" in w for w in warnings)
    assert np.array_equal(pixels(image.path), pixels(only_kept.path))
    assert "gone" not in image.parameters  # the A1111 text names only what was used


def test_a_file_replaced_in_place_is_reloaded_never_mixed(tiny_sd15, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    target = make_lora(tiny_sd15, share / "ink.safetensors", family="sd1", seed=1)
    session = facade.GenerationSession(str(tiny_sd15))
    stack = [StackEntry(str(target), weight=1.0)]
    [first] = session.generate(params(stack), str(tmp_path / "o1"), on_event=lambda e: None, cancel=CancelToken())
    old_name = adapter_identity(target).adapter_name
    assert old_name in session._generator.adapters
    # A teammate's sync replaces the file (new weights, same name).
    incoming = make_lora(tiny_sd15, tmp_path / "incoming.safetensors", family="sd1", seed=2)
    os.replace(incoming, target)
    facade.adapter_files_changed([str(target)])
    [second] = session.generate(params(stack), str(tmp_path / "o2"), on_event=lambda e: None, cancel=CancelToken())
    assert old_name not in session._generator.adapters  # the old weights were dropped, not kept beside
    [fresh] = Generator(tiny_sd15).generate(params(stack, out_dir=str(tmp_path / "o3")))
    assert np.array_equal(pixels(second.path), pixels(fresh.path))
    assert not np.array_equal(pixels(second.path), pixels(first.path))


def test_png_made_before_the_file_changed_says_so_and_offers_the_old_version(gen, tiny_sd15, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    ink = make_lora(tiny_sd15, share / "ink-house.safetensors", family="sd1", seed=1, title="ink-house")
    facade.set_extra_adapter_folders([str(share)])
    try:
        [made] = gen.generate(params([StackEntry(str(ink), weight=0.8)], out_dir=str(tmp_path / "pics")))
        archive = share / "archive" / "ink-house-2025.safetensors"
        archive.parent.mkdir()
        shutil.copyfile(ink, archive)  # someone kept the old version
        os.replace(make_lora(tiny_sd15, tmp_path / "v2.safetensors", family="sd1", seed=9, title="ink-house"), ink)

        restored = facade.read_png_parameters(str(made.path))
        assert restored.stack[0].path == str(archive)  # the exact weights win
        [note] = facade.stack_version_notes(restored.stack)
        assert note.startswith("Made with an earlier version of ink-house: using that version (ink-house-2025")
        assert str(ink) in note

        archive.unlink()  # the old version is gone from the shelf
        restored = facade.read_png_parameters(str(made.path))
        assert restored.stack[0].path == str(ink)
        [note] = facade.stack_version_notes(restored.stack)
        assert "earlier version of ink-house, which is no longer on the shelf" in note
        # The current file used for the same PNG now: no note.
        current = StackEntry(str(ink), name="ink-house", sha256=adapter_identity(ink).tensor_sha256)
        assert facade.stack_version_notes([current]) == []
    finally:
        facade.set_extra_adapter_folders([])


def test_generate_with_a_stack_file_skips_what_is_missing(tiny_sd15, tmp_path, capsys, monkeypatch):
    share = tmp_path / "share"
    share.mkdir()
    a = make_lora(tiny_sd15, share / "a.safetensors", family="sd1", seed=1)
    b = make_lora(tiny_sd15, share / "b.safetensors", family="sd1", seed=2)
    lib = Library([share], bundled_folder=None)
    entries = [
        StackEntry(str(p), weight=w, name=p.stem, sha256=lib.find(str(p)).tensor_sha256)
        for p, w in ((a, 0.6), (b, 0.9))
    ]
    stack_path = save_stack_file(share, "house", entries)
    b.unlink()
    base = ["generate", "--base", str(tiny_sd15), "--prompt", "a red boat", "--steps", "2", "--width", "64",
            "--height", "64", "--seed", "3"]  # fmt: skip
    assert cli_main([*base, "--stack", str(stack_path), "--out", str(tmp_path / "s.png")]) == 0
    err = capsys.readouterr().err
    assert "warning: b is not on the shelf" in err and "Left out." in err
    assert cli_main([*base, "--adapter", f"{a}:0.6", "--out", str(tmp_path / "plain.png")]) == 0
    assert np.array_equal(pixels(tmp_path / "s.png"), pixels(tmp_path / "plain.png"))
