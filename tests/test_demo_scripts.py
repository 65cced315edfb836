"""The demo-model builder runs end to end (a few steps of every stage) and writes a loadable, atomic folder."""

from __future__ import annotations

import importlib.util

import pytest

from app.engine.paths import REPO_ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_build_writes_a_loadable_demo_model(tmp_path):
    import torch

    from tools.demo.harness import draw, load_demo_pipeline

    out = tmp_path / "demo-model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older build")
    assert _script("train_demo_model").main([str(out), "--quick", "--threads", "1"]) == 0
    assert not (out / "stale.txt").exists()  # the folder was swapped whole, not written into
    assert not list(tmp_path.glob(".demo-model.*"))  # no temp or old folder left behind
    assert (out / "tokenizer" / "vocab.json").exists() and (out / "README.md").exists()
    pipe = load_demo_pipeline(out)
    assert next(pipe.unet.parameters()).dtype == torch.float32  # fp16 on disk, fp32 in memory
    image = draw(pipe, ["a red circle on a blue background"], [0], steps=2)[0]
    assert image.size == (64, 64)
