"""What a trained adapter file carries when it is shared: no trace of the training machine's folders."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from app.engine.adapters.sftfile import read_header
from app.engine.train import TrainConfig, train
from test_train_data import make_style_set


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, tiny_sd15):
    """One short run whose dataset, base and output all live under a person's home folder, given as absolute paths."""
    home = tmp_path_factory.mktemp("machine") / "home" / "alice"
    data = make_style_set(home / "Pictures" / "my style set", 8, seed=3)
    base = home / "models" / "tiny-base"
    shutil.copytree(tiny_sd15, base)
    out = home / "adapters" / "inky.safetensors"
    cfg = TrainConfig(dataset_dir=str(data.resolve()), base=str(base.resolve()), out=str(out.resolve()), steps=2,
                      rank=4, learning_rate=1e-3, resolution=64, batch_size=2, checkpoint_every=0, sample_steps=2,
                      min_snr_gamma=0.0, trigger="inky", validation_images=2, cpu_threads=1,
                      lora_targets="attention+ff+conv", description="made at home")
    result = train(cfg)
    return home, cfg, result


def test_no_path_of_the_training_machine_in_the_header(shared_run):
    home, cfg, result = shared_run
    raw = Path(result.adapter).read_bytes()
    header = raw[8:8 + int.from_bytes(raw[:8], "little")].decode("utf-8")
    for secret in (str(home), cfg.dataset_dir, cfg.base, cfg.out, str(Path(cfg.base).parent)):
        assert secret not in header, secret
    assert "alice" not in header  # not even the user's name as a folder component
    stored = tomllib.loads(read_header(result.adapter).metadata["styleshelf.train_config"])
    assert stored["dataset_dir"] == "my style set" and stored["base"] == "tiny-base"
    assert stored["out"] == "inky.safetensors"
    from app.engine.generate.identity import base_model_hash

    assert stored["base_hash"] == base_model_hash(cfg.base) and len(stored["base_hash"]) == 10
    assert json.loads(read_header(result.adapter).metadata["ss_tag_frequency"])["my style set"]["inky"] == 8
