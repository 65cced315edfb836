"""`styleshelf generate` end to end on the tiny SD1.5 model."""

from __future__ import annotations

import json
import subprocess
import sys

from app.cli import main
from app.engine.generate.pngmeta import read_png_text
from tests.helpers.cli import one_error_line
from tests.helpers.loras import make_lora


def small(tiny_sd15, out, *extra):
    return ["generate", "--base", str(tiny_sd15), "--prompt", "a red boat", "--steps", "2", "--width", "64",
            "--height", "64", "--out", str(out), *extra]  # fmt: skip


def test_cli_writes_png_with_parameters_and_record(tiny_sd15, sd15_loras, tmp_path, capsys):
    out = tmp_path / "pics" / "boat.png"
    code = main(small(tiny_sd15, out, "--adapter", f"{sd15_loras['b']}:0.7", "--seed", "5", "--sampler", "Euler",
                      "--negative", "fog"))  # fmt: skip
    assert code == 0
    assert out.is_file()
    text = read_png_text(out)
    params = text["parameters"]
    assert params.splitlines()[0] == "a red boat <lora:style-b:0.7>"
    assert params.splitlines()[1] == "Negative prompt: fog"
    assert "Steps: 2, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x64" in params
    record = json.loads(text["styleshelf"])
    assert record["stack"][0]["weight"] == 0.7 and record["stack"][0]["sha256"]
    assert f"wrote {out} (seed 5)" in capsys.readouterr().out


def test_cli_batch_names_files_and_random_seed_is_reported(tiny_sd15, tmp_path, capsys):
    out = tmp_path / "b.png"
    assert main(small(tiny_sd15, out, "--batch-count", "2", "--json-events")) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    images = [e for e in events if e["event"] == "image"]
    assert [e["path"] for e in images] == [str(tmp_path / "b-1.png"), str(tmp_path / "b-2.png")]
    assert images[1]["seed"] == (images[0]["seed"] + 1) % 2**32
    assert f"Seed: {images[0]['seed']}," in read_png_text(tmp_path / "b-1.png")["parameters"]
    assert events[-1]["event"] == "finished" and not events[-1]["cancelled"]


def test_cli_bad_adapter_exits_2_with_one_line(tiny_sd15, tiny_sdxl, tmp_path, capsys):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    assert main(small(tiny_sd15, tmp_path / "x.png", "--adapter", str(junk))) == 2
    assert "junk.safetensors" in one_error_line(capsys.readouterr().err)
    # A well-formed adapter for another family fails at load time, still as one line, and writes nothing.
    xl = make_lora(tiny_sdxl, tmp_path / "xl-style.safetensors", family="sdxl", seed=9)
    assert main(small(tiny_sd15, tmp_path / "y.png", "--adapter", f"{xl}:0.5")) == 2
    assert "xl-style.safetensors" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.glob("*.png")) == []


def test_cli_bad_settings_exit_2(tiny_sd15, tmp_path, capsys):
    assert main(small(tiny_sd15, tmp_path / "x.png", "--sampler", "Nope")) == 2
    assert "Nope" in one_error_line(capsys.readouterr().err)
    assert main(small(tiny_sd15, tmp_path / "x.jpg")) == 2
    one_error_line(capsys.readouterr().err)


def test_cli_as_a_process_refuses_a_pickle(tiny_sd15, tmp_path):
    pickle = tmp_path / "style.ckpt"
    pickle.write_bytes(b"\x80\x04K\x01.")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", *small(tiny_sd15, tmp_path / "x.png", "--adapter", str(pickle))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "style.ckpt" in one_error_line(proc.stderr)
