"""Full-size SD1.5 and SD2.1-768-v checkpoints (zero-filled, sparse on disk) load offline with the bundled configs.

Slow (30–60 s and ~5 GB of RAM each): run with `make test-slow`. The default run proves the same key layout
on the meta device (test_models_single_file.py::test_real_size_mapping_reads_back_through_diffusers).
"""

from __future__ import annotations

import pytest
import torch

from app.engine.models.detect import detect_family
from app.engine.models.loading import load_base
from app.engine.models.skeleton_file import write_skeleton_checkpoint

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "family, file_name, unet_m, text_m, prediction",
    [
        ("sd1", "v1-5-pruned-emaonly.safetensors", 859.52, 123.06, "epsilon"),
        # The release name is the only v-prediction signal; the file also carries OpenCLIP's unused 24th layer.
        ("sd2-v", "v2-1_768-ema-pruned.safetensors", 865.91, 340.39, "v_prediction"),
    ],
)
def test_release_layout_loads_offline_with_bundled_config(tmp_path, family, file_name, unet_m, text_m, prediction):
    path = write_skeleton_checkpoint(family, tmp_path / file_name)
    assert path.stat().st_size > 2e9
    assert detect_family(path) == family
    base = load_base(path, dtype="bf16")  # bf16 halves the RAM; the layout is what is under test
    assert (base.family, base.prediction_type, base.single_file) == (family, prediction, True)
    assert sum(p.numel() for p in base.pipe.unet.parameters()) / 1e6 == pytest.approx(unet_m, abs=0.01)
    assert sum(p.numel() for p in base.pipe.text_encoder.parameters()) / 1e6 == pytest.approx(text_m, abs=0.01)
    # Every weight came from the (all-zero) file, none left uninitialised or random.
    assert all(float(p.detach().abs().max()) == 0.0 for p in base.pipe.unet.parameters())
    assert base.pipe.unet.dtype == torch.bfloat16


def test_release_inpainting_layout_loads_offline_with_bundled_config(tmp_path):
    """sd-v1-5-inpainting.safetensors' shapes (conv_in reads 9 channels) with the bundled (4-channel) SD1.5 configs."""
    path = write_skeleton_checkpoint("sd1", tmp_path / "sd-v1-5-inpainting.safetensors", in_channels=9)
    base = load_base(path, dtype="bf16")
    assert (base.family, base.single_file) == ("sd1", True)
    assert tuple(base.pipe.unet.conv_in.weight.shape) == (320, 9, 3, 3)
    assert sum(p.numel() for p in base.pipe.unet.parameters()) / 1e6 == pytest.approx(859.54, abs=0.01)
    assert all(float(p.detach().abs().max()) == 0.0 for p in base.pipe.unet.parameters())


def test_loading_never_reaches_for_the_network(tmp_path, tiny_sd15):
    """Without HF_HUB_OFFLINE and with every socket connect failing loudly, folder and single file still load."""
    import os
    import subprocess
    import sys

    from app.engine.models.single_file import export_single_file
    from app.engine.paths import REPO_ROOT

    single = export_single_file(tiny_sd15, tmp_path / "tiny.safetensors")
    script = f"""
import socket
def refuse(*a, **k):
    raise SystemExit("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from app.engine.models.loading import load_base
a = load_base({str(tiny_sd15)!r})
b = load_base({str(single)!r}, config={str(tiny_sd15)!r})
print("loaded", a.family, b.family)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded sd1 sd1" in done.stdout
