"""The JSON event wire: enums travel as their plain strings, a training run's summary goes out as the same
keys as always and comes back typed, and a line a newer child sends never breaks the reader."""

from __future__ import annotations

import io
import json

import pytest

from app.engine.events import (
    Finished,
    Level,
    Log,
    Phase,
    Progress,
    TrainFinished,
    TrainSummary,
    event_from_json,
    json_event_printer,
    train_event_from_json,
)

# The summary keys the GUI, the CLI and saved adapters have always read (the wire contract).
SUMMARY_KEYS = {
    "steps",
    "total_steps",
    "started_at_step",
    "cancelled",
    "train_images",
    "skipped_images",
    "validation_images",
    "validation_held_out",
    "validation_loss_base",
    "validation_loss_adapter",
    "validation_change",
    "final_loss",
    "mean_loss_last_10",
    "it_per_s",
    "seconds",
    "processes",
    "rank_checksums",
    "ranks_in_sync",
    "family",
    "checkpoint",
    "thumbnail_sample",
    "saved",
    "killed_after_s",
}


def test_enums_are_the_old_strings_on_the_wire():
    line = json.loads(Log(message="low memory", level=Level.WARNING).to_json())
    assert line == {"event": "log", "message": "low memory", "level": "warning"}
    assert json.loads(Progress(step=2, total=9, phase=Phase.CACHE).to_json())["phase"] == "cache"
    # A plain string (older call sites, a parsed line) becomes the enum; a typo fails at once.
    assert Progress(phase="sample").phase is Phase.SAMPLE
    with pytest.raises(ValueError):
        Progress(phase="cahce")


def test_train_summary_goes_out_as_the_same_keys_and_comes_back_typed():
    summary = TrainSummary(
        steps=7,
        total_steps=10,
        cancelled=True,
        validation_loss_base=0.5,
        rank_checksums=["ab", "ab"],
        saved=["adapter", "checkpoint"],
        checkpoint="/c/step-000007",
    )
    line = TrainFinished(output="/a/style.safetensors", cancelled=True, summary=summary).to_json()
    wire = json.loads(line)
    assert wire["event"] == "finished" and set(wire["summary"]) == SUMMARY_KEYS
    assert wire["summary"]["steps"] == 7 and wire["summary"]["saved"] == ["adapter", "checkpoint"]
    back = train_event_from_json(line)
    assert isinstance(back, TrainFinished) and back.summary == summary and back.output == "/a/style.safetensors"
    # Read without the training context it is a plain Finished with the summary as a dict.
    plain = event_from_json(line)
    assert type(plain) is Finished and plain.summary["checkpoint"] == "/c/step-000007"


def test_a_newer_or_broken_child_line():
    newer = {
        "event": "finished",
        "output": "x",
        "cancelled": False,
        "extra": 1,
        "summary": {"steps": 3, "a_field_from_the_future": True},
    }
    back = train_event_from_json(json.dumps(newer))
    assert isinstance(back, TrainFinished) and back.summary.steps == 3 and back.summary.total_steps == 0
    assert isinstance(train_event_from_json('{"event": "telemetry", "x": 1}'), Log)
    with pytest.raises(ValueError):
        train_event_from_json('{"event": "progress", "phase": "warp"}')  # the GUI shows such a line as text
    with pytest.raises(TypeError):
        train_event_from_json("[1, 2]")
    with pytest.raises(ValueError):
        train_event_from_json("not json: a stray print")


def test_json_event_printer_writes_one_flushed_line_per_event(monkeypatch):
    stream = io.StringIO()
    emit = json_event_printer(stream)
    emit(Progress(step=1, total=2))
    emit(Log(message="two\nlines"))
    lines = stream.getvalue().splitlines()
    assert [json.loads(x)["event"] for x in lines] == ["progress", "log"]
    # Without a stream it follows sys.stdout as it is at each event (the train command swaps it).
    later = io.StringIO()
    monkeypatch.setattr("sys.stdout", later)
    json_event_printer()(Log(message="hi"))
    assert json.loads(later.getvalue())["message"] == "hi"
