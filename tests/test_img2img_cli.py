"""`styleshelf generate --init-image/--mask` and the batch restyle of a folder, on the demo model."""

from __future__ import annotations

import json
import os
import signal

import pytest
from PIL import Image, ImageDraw

from app.cli import main
from app.engine.generate import batch
from app.engine.generate.pngmeta import read_png_text
from app.engine.paths import DEMO_MODEL_DIR
from tests.helpers.cli import one_error_line
from tools.demo.scenes import Scene, render


def cli(*extra):
    return ["generate", "--base", str(DEMO_MODEL_DIR), "--prompt", "a large red circle on a blue background",
            "--steps", "6", "--seed", "3", *extra]  # fmt: skip


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (colour, dx) in enumerate((("red", -0.1), ("yellow", 0.0), ("green", 0.1))):
        render(Scene("circle", colour, "blue", dx=dx)).save(folder / f"frame-{i:02d}.png")
    return folder


def test_init_image_and_mask_on_the_command_line(frames, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    m = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(m).rectangle((16, 16, 48, 48), fill=255)
    m.save(mask)
    out = tmp_path / "out" / "inpainted.png"
    code = main(cli("--init-image", str(frames / "frame-00.png"), "--strength", "0.6", "--mask", str(mask),
                    "--mask-blur", "2", "--inpaint-area", "Only masked", "--out", str(out)))  # fmt: skip
    assert code == 0 and out.is_file()
    params = read_png_text(out)["parameters"]
    assert "Denoising strength: 0.6, Mask blur: 2, Inpaint area: Only masked" in params
    assert f"wrote {out} (seed 3)" in capsys.readouterr().out


def test_batch_restyle_names_outputs_after_inputs_with_progress_and_skips_broken(frames, tmp_path, capsys):
    (frames / "broken.png").write_bytes(b"not a picture")
    masks = tmp_path / "masks"
    masks.mkdir()
    m = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(m).rectangle((20, 20, 44, 44), fill=255)
    m.save(masks / "frame-01.png")  # only this frame is inpainted; the others are restyled whole
    out = tmp_path / "restyled"
    code = main(cli("--init-dir", str(frames), "--out-dir", str(out), "--mask-dir", str(masks), "--strength", "0.5",
                    "--json-events"))  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["frame-00.png", "frame-01.png", "frame-02.png"]
    assert "Mask blur" in read_png_text(out / "frame-01.png")["parameters"]
    assert "Mask blur" not in read_png_text(out / "frame-00.png")["parameters"]
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    steps = [(e["step"], e["total"]) for e in events if e["event"] == "progress"]
    assert steps == sorted(steps) and len({t for _s, t in steps}) == 1 and steps[-1][0] == steps[-1][1]
    finished = events[-1]
    assert finished["event"] == "finished" and len(finished["summary"]["images"]) == 3
    assert finished["summary"]["skipped"][0].startswith("broken.png")
    assert all(f"Seed: {finished['summary']['seed']}," in read_png_text(p)["parameters"] for p in out.glob("*.png"))


def test_ctrl_c_cancels_the_batch_after_the_current_picture(frames, tmp_path, monkeypatch, capsys):
    forward = batch._Forward.__call__

    def interrupt_after_first_image(self, event):
        forward(self, event)
        if type(event).__name__ == "ImageReady" and self.index == 0:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal sends

    monkeypatch.setattr(batch._Forward, "__call__", interrupt_after_first_image)
    out = tmp_path / "restyled"
    assert main(cli("--init-dir", str(frames), "--out-dir", str(out), "--strength", "0.5")) == 130
    assert [p.name for p in out.glob("*.png")] == ["frame-00.png"]
    assert not list(out.glob(".*.tmp")), "no half-written file is left"
    assert "1 restyled" in capsys.readouterr().out and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mask", "m.png", "--out", "x.png"], "--mask needs --init-image"),
        (["--init-dir", "."], "needs --out-dir"),
        (["--init-image", "nope.png", "--out", "x.png"], "file not found"),
    ],
)
def test_contradictory_options_are_one_line_errors(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    assert main(cli(*args)) == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_output_folder_must_differ_from_input(frames, capsys):
    assert main(cli("--init-dir", str(frames), "--out-dir", str(frames))) == 2
    assert "must differ" in one_error_line(capsys.readouterr().err)
