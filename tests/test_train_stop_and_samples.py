"""Cancel keeps exactly what it says, a run killed after its last checkpoint can be finished by --resume, a
resumed run keeps its loss history, and samples show base vs adapter from the dataset's own captions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from app.engine.events import CancelToken, Finished, Log, Progress, SampleReady
from app.engine.train import TrainConfig, train
from app.engine.train.run_state import checkpoint_history, list_checkpoints, resume_point
from app.engine.train.sampling import GAP, adapter_half, best_sample, interest, sample_steps_of
from tests.helpers.datasets import make_style_set
from tests.helpers.train_configs import tiny_run


@pytest.fixture(scope="module")
def style_data(tmp_path_factory) -> Path:
    folder = make_style_set(tmp_path_factory.mktemp("style") / "stripes", 8, seed=3)
    for i, path in enumerate(sorted(folder.glob("*.png"))):  # captions of their own, as an artist writes them
        path.with_suffix(".txt").write_text(f"diagonal stripes, picture {i}\n", encoding="utf-8")
    return folder


def _config(data: Path, base: Path, out: Path, **kw) -> TrainConfig:
    return tiny_run(data, base, out, **{"trigger": "zq", "thumbnail": False, **kw})


def test_cancel_saves_checkpoint_and_adapter_at_once_and_says_so(style_data, tiny_sd15, tmp_path):
    cancel, events = CancelToken(), []
    stopped_at = []

    def on_event(event):
        events.append(event)
        if isinstance(event, Progress) and event.phase == "train" and event.step == 2:
            cancel.cancel()
            stopped_at.append(time.monotonic())

    out = tmp_path / "c.safetensors"
    result = train(_config(style_data, tiny_sd15, out, steps=50, thumbnail=True), on_event=on_event, cancel=cancel)
    elapsed = time.monotonic() - stopped_at[0]
    assert result.cancelled and result.steps == 2
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.cancelled and finished.output == str(out)
    s = finished.summary
    assert s.saved == ["adapter", "checkpoint"] and s.steps == 2 and s.total_steps == 50
    assert Path(s.checkpoint).name == "step-000002" and out.is_file()
    # Cancel means stop: no validation pass and no sample drawn after the request.
    assert s.validation_loss_base is None and not [e for e in events if isinstance(e, SampleReady)]
    assert not any("Validating" in e.message for e in events if isinstance(e, Log))
    assert elapsed < 30, elapsed
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["ss_steps"] == "2"


def test_cancel_while_the_model_loads_stops_before_caching_and_saves_nothing(style_data, tiny_sd15, tmp_path):
    cancel, events = CancelToken(), []

    def on_event(event):
        events.append(event)
        if isinstance(event, Log) and event.message.startswith("Loading base model"):
            cancel.cancel()

    out = tmp_path / "early.safetensors"
    result = train(_config(style_data, tiny_sd15, out), on_event=on_event, cancel=cancel)
    assert result.cancelled and result.adapter is None
    assert not any(isinstance(e, Progress) for e in events)  # not even the cache was filled
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.summary.saved == [] and finished.output == ""
    assert not out.exists() and not list_checkpoints(out.with_name("early.checkpoints"))


def test_resume_keeps_loss_history_and_reports_the_true_position(style_data, tiny_sd15, tmp_path):
    cancel, first = CancelToken(), []

    def on_event(event):
        first.append(event)
        if isinstance(event, Progress) and event.phase == "train" and event.step == 3:
            cancel.cancel()

    out = tmp_path / "h.safetensors"
    train(_config(style_data, tiny_sd15, out), on_event=on_event, cancel=cancel)
    losses = [e.loss for e in first if isinstance(e, Progress) and e.phase == "train"]
    point = resume_point(out.with_name("h.checkpoints"))
    assert point["step"] == 3 and point["total"] == 6
    assert point["losses"] == pytest.approx(losses, abs=1e-6)
    second = []
    result = train(_config(style_data, tiny_sd15, out, resume=True), on_event=second.append)
    progress = [e for e in second if isinstance(e, Progress) and e.phase == "train"]
    assert (progress[0].step, progress[0].total, progress[0].loss) == (3, 6, None)  # before the first new step
    assert [p.step for p in progress[1:]] == [4, 5, 6]
    assert len(checkpoint_history(result.checkpoint)) == 6
    assert checkpoint_history(result.checkpoint)[:3] == pytest.approx(losses, abs=1e-6)


def test_resume_from_the_final_checkpoint_finishes_the_run(style_data, tiny_sd15, tmp_path):
    """A kill between the last checkpoint and the adapter write (validation, samples) left no adapter."""
    out = tmp_path / "late.safetensors"
    first = train(_config(style_data, tiny_sd15, out, steps=4))
    assert first.checkpoint.name == "step-000004"
    out.unlink()  # what the kill leaves: the final checkpoint, no adapter
    events = []
    resumed = train(_config(style_data, tiny_sd15, out, steps=4, resume=True, thumbnail=True), on_event=events.append)
    assert out.is_file() and resumed.steps == 4 and not resumed.cancelled
    s = resumed.summary
    assert s.started_at_step == 4 and s.validation_loss_base is not None  # validation redone
    assert [e.step for e in events if isinstance(e, SampleReady)] == [4]  # the shelf picture redone too
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["ss_steps"] == "4" and f.metadata()["modelspec.thumbnail"].startswith("data:image/")
    with pytest.raises(Exception, match="past the 3 steps"):
        train(_config(style_data, tiny_sd15, out, steps=3, resume=True))


def test_samples_compare_base_and_adapter_on_the_datasets_captions(style_data, tiny_sd15, tmp_path):
    out = tmp_path / "s.safetensors"
    events = []
    train(_config(style_data, tiny_sd15, out, steps=4, sample_count=2, thumbnail=True), on_event=events.append)
    rounds = [e for e in events if isinstance(e, SampleReady)]
    assert [r.step for r in rounds] == [2, 4]  # evenly spaced, the last at the final step; no extra final one
    prompts = rounds[0].prompts
    assert len(prompts) == 2 and all(p.startswith("zq, diagonal stripes, picture") for p in prompts)
    assert prompts[0] != prompts[1]
    first, last = (Image.open(p) for p in (rounds[0].paths[0], rounds[1].paths[0]))
    assert first.size == (64 * 2 + GAP, 64)
    assert first.text["step"] == "2" and first.text["prompt"] == prompts[0]
    # Same seed, base half unchanged between rounds; the adapter half moved with training.
    assert first.crop((0, 0, 64, 64)).tobytes() == last.crop((0, 0, 64, 64)).tobytes()
    assert adapter_half(Path(rounds[0].paths[0])).tobytes() != adapter_half(Path(rounds[1].paths[0])).tobytes()
    finished = events[-1]
    assert finished.summary.thumbnail_sample in rounds[-1].paths
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["modelspec.thumbnail"].startswith("data:image/")


def test_thumbnail_pick_prefers_a_clear_picture_over_a_pale_blob(tmp_path):
    pale = Image.new("RGB", (64 * 2 + GAP, 64), (235, 232, 238))
    striped = pale.copy()
    for x in range(66, 130, 8):
        for y in range(64):
            for dx in range(4):
                if x + dx < striped.width:
                    striped.putpixel((x + dx, y), (200, 30, 40))
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    pale.save(paths[0])
    striped.save(paths[1])
    assert interest(adapter_half(paths[1])) > 5 * interest(adapter_half(paths[0])) + 1
    assert best_sample(paths) == paths[1]


def test_sample_schedule_is_a_few_rounds_whatever_the_length():
    assert sample_steps_of(600, every=0, count=4) == {150, 300, 450, 600}
    assert sample_steps_of(3, every=0, count=4) == {1, 2, 3}
    assert sample_steps_of(600, every=250, count=4) == {250, 500}
    assert sample_steps_of(600, every=0, count=0) == set()
    assert json.dumps(sorted(sample_steps_of(10, every=0, count=3))) == "[3, 7, 10]"
