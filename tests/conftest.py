"""Shared fixtures: no network, offscreen Qt, a private STYLESHELF_HOME, tiny models and adapters built once.

Helper functions (not fixtures) live in tests/helpers/; test modules never import each other."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from a second thread, and the GUI tests run a training child process beside the
# test process: two processes × two threads on two cores stalled renders 50× here (helpers' measurement).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Pin torch to one thread even if something raised it (OMP_NUM_THREADS covers child processes)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def styleshelf_home(tmp_path_factory, monkeypatch):
    """Every test gets its own user data/cache folders, never the real ones."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("STYLESHELF_HOME", str(home))
    return home


@pytest.fixture
def isolated_settings(tmp_path):
    """The GUI's QSettings store in a temporary folder: tests never read or write a real user's preferences."""
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield tmp_path / "qsettings"


@pytest.fixture(scope="module")
def ui_thread_gc(qapp):
    """What the app does at start (app.gui.gc_guard): Python's cycle collector runs on the UI thread only, so a
    worker thread never destroys Qt objects. Undone after each GUI module, so engine tests keep automatic GC."""
    from app.gui import gc_guard

    gc_guard.install()
    yield
    gc_guard.uninstall()


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory):
    """A tiny random SD1.5-architecture diffusers folder (built once per test run, ~1 s)."""
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd15", "sd15", seed=0)


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sdxl", "sdxl", seed=0)


@pytest.fixture(scope="session")
def tiny_sd2v(tmp_path_factory):
    from app.engine.models.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("models") / "tiny-sd2v", "sd2-v", seed=0)


@pytest.fixture(scope="session")
def sd15_loras(tiny_sd15, tmp_path_factory):
    """Three SD1 adapters on the tiny model: a (trigger 'inkwash'), b, and c with a text-encoder part."""
    from tests.helpers.loras import make_lora

    folder = tmp_path_factory.mktemp("loras")
    return {
        "a": make_lora(tiny_sd15, folder / "style-a.safetensors", family="sd1", seed=1, trigger="inkwash"),
        "b": make_lora(tiny_sd15, folder / "style-b.safetensors", family="sd1", seed=2),
        "c": make_lora(tiny_sd15, folder / "style-c.safetensors", family="sd1", seed=3, text_encoder=True),
    }


@pytest.fixture(scope="session")
def checkpoint_run(tiny_sd15, tmp_path_factory):
    """A finished 6-step run on the tiny model keeping checkpoints 2, 4 and 6, exported by `train` itself
    (``stripy.safetensors`` beside ``stripy.checkpoints/``, and the dataset it learned from)."""
    from app.cli import main
    from tests.helpers.datasets import make_style_set

    root = tmp_path_factory.mktemp("ckpt-run")
    data = make_style_set(root / "stripes", 8, seed=3)
    out = root / "stripy.safetensors"
    code = main(["train", str(data), "--base", str(tiny_sd15), "--out", str(out), "--steps", "6", "--rank", "4",
                 "--lr", "1e-2", "--resolution", "64", "--batch-size", "2", "--checkpoint-every", "2",
                 "--sample-steps", "2", "--validation-images", "2", "--trigger", "stripy",
                 "--set", "keep_checkpoints=3", "--set", "cpu_threads=1", "--export-checkpoints"])  # fmt: skip
    assert code == 0
    return out
