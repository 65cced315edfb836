"""Typed progress events for long work (training, generation), with a JSON form for child processes.

Every long entry point takes ``on_event: Callable[[Event], None]``. Commands given ``--json-events``
print every event through ``json_event_printer`` (one JSON object per line); the GUI runs training as a
child process (``styleshelf train --json-events``) and reads those lines back with
``train_event_from_json``, which also turns the ``finished`` line's summary back into a ``TrainSummary``.
The enums are ``StrEnum``: on the wire (and in comparisons) they are the same plain strings as before.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TextIO


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"


class Phase(StrEnum):
    """What a ``Progress`` counts: only ``TRAIN`` steps move the GUI's step bar."""

    TRAIN = "train"
    CACHE = "cache"  # images and captions encoded before the first step
    SAMPLE = "sample"
    VALIDATE = "validate"
    GENERATE = "generate"
    GRID = "grid"  # grid cells done
    BAKE = "bake"  # modules merged


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, **dataclasses.asdict(self)}, default=str)

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        """The event from its JSON fields; fields a newer child added are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Log(Event):
    """A line of human-readable status ("caching latents…")."""

    kind: ClassVar[str] = "log"
    message: str = ""
    level: Level = Level.INFO

    def __post_init__(self) -> None:
        self.level = Level(self.level)  # a plain "warning" becomes the enum; a typo fails here, loudly


@dataclass
class Progress(Event):
    """One optimisation or sampling step finished."""

    kind: ClassVar[str] = "progress"
    step: int = 0
    total: int = 0
    loss: float | None = None
    smoothed_loss: float | None = None
    it_per_s: float | None = None
    eta_s: float | None = None
    phase: Phase = Phase.TRAIN

    def __post_init__(self) -> None:
        self.phase = Phase(self.phase)


@dataclass
class SampleReady(Event):
    """Sample images written during training (paths to PNG files)."""

    kind: ClassVar[str] = "sample"
    step: int = 0
    paths: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


@dataclass
class Preview(Event):
    """A cheap preview during generation: a PNG path (or empty) for the current step."""

    kind: ClassVar[str] = "preview"
    step: int = 0
    total: int = 0
    path: str = ""


@dataclass
class ImageReady(Event):
    """A finished generated image."""

    kind: ClassVar[str] = "image"
    path: str = ""
    index: int = 0
    seed: int = 0


@dataclass
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""


@dataclass
class Finished(Event):
    """Work ended normally or by cancel; ``output`` is the main file written (adapter, image)."""

    kind: ClassVar[str] = "finished"
    output: str = ""
    cancelled: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSummary:
    """What a training run did: the ``summary`` of its ``finished`` event and of ``TrainResult``.

    A run stopped before its first (new) step fills only ``steps``, ``total_steps``, ``cancelled``,
    ``saved`` and ``checkpoint``; a cancelled run skips validation (its losses stay None).
    """

    steps: int = 0  # the step the adapter is at
    total_steps: int = 0
    started_at_step: int = 0  # > 0 for a resumed run
    cancelled: bool = False
    train_images: int = 0
    skipped_images: int = 0
    validation_images: int = 0
    validation_held_out: bool = False  # held-out images, or (too few images) the training images
    validation_loss_base: float | None = None
    validation_loss_adapter: float | None = None
    validation_change: float | None = None  # (adapter - base) / base
    final_loss: float | None = None
    mean_loss_last_10: float | None = None
    it_per_s: float | None = None
    seconds: float = 0.0
    processes: int = 1
    rank_checksums: list[str] = field(default_factory=list)  # one per process: equal when they stayed in sync
    ranks_in_sync: bool = True
    family: str = ""
    checkpoint: str = ""  # the checkpoint Resume continues from ("" = none)
    thumbnail_sample: str = ""  # the sample embedded as the shelf picture
    saved: list[str] = field(default_factory=list)  # "adapter", "checkpoint"
    killed_after_s: float | None = None  # set by the GUI when the child ignored Cancel and was ended

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TrainFinished(Finished):
    """A training run ended: the same ``finished`` line on the wire, with a typed summary."""

    summary: TrainSummary = field(default_factory=TrainSummary)  # type: ignore[assignment]

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Event:
        summary = data.get("summary")
        return super().from_fields({**data, "summary": TrainSummary.from_dict(summary or {})})


@dataclass
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str = ""
    details: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (Log, Progress, SampleReady, Preview, ImageReady, CheckpointSaved, Finished, Error)
}
TRAIN_EVENT_TYPES: dict[str, type[Event]] = {**EVENT_TYPES, TrainFinished.kind: TrainFinished}

EventCallback = Callable[[Event], None]


def event_from_json(line: str, types: dict[str, type[Event]] = EVENT_TYPES) -> Event:
    """Parse one ``--json-events`` line; unknown kinds become a Log so a newer child never breaks the GUI.

    Raises ValueError or TypeError for a line that is not an event (not JSON, not an object, a value no
    field accepts)."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError(f"not an event: {line[:80]}")
    kind = data.pop("event", "log")
    cls = types.get(kind)
    if cls is None:
        return Log(message=f"unknown event {kind}: {data}")
    return cls.from_fields(data)


def train_event_from_json(line: str) -> Event:
    """Parse one line of ``styleshelf train --json-events``: its ``finished`` event is a ``TrainFinished``."""
    return event_from_json(line, TRAIN_EVENT_TYPES)


def json_event_printer(stream: TextIO | None = None) -> EventCallback:
    """The ``--json-events`` channel of every command: one event per line, flushed at once (a reader acts
    on each as it comes). ``stream`` defaults to whatever ``sys.stdout`` is at each event."""

    def emit(event: Event) -> None:
        out = stream if stream is not None else sys.stdout
        out.write(event.to_json() + "\n")
        out.flush()

    return emit


def ignore_event(_event: Event) -> None:
    """Default ``on_event`` for callers that do not care."""


class CancelToken:
    """Thread-safe cancel flag handed to long work; ``is_set()`` matches ``threading.Event``."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def cancel(self) -> None:
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()


NEVER_CANCEL = CancelToken()
