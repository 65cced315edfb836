"""Typed progress events for long work (training, generation), with a JSON form for child processes.

Every long entry point takes ``on_event: Callable[[Event], None]``. The GUI runs training as a child
process (``styleshelf train --json-events``) and reads one JSON object per line back into these classes
with ``event_from_json``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_json(self) -> str:
        return json.dumps({"event": self.kind, **dataclasses.asdict(self)}, default=str)


@dataclass
class Log(Event):
    """A line of human-readable status ("caching latents…")."""

    kind: ClassVar[str] = "log"
    message: str = ""
    level: str = "info"  # info | warning


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
    phase: str = "train"  # train | cache | sample | generate | validate


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
class Error(Event):
    kind: ClassVar[str] = "error"
    message: str = ""
    details: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls for cls in (Log, Progress, SampleReady, Preview, ImageReady, CheckpointSaved, Finished, Error)
}

EventCallback = Callable[[Event], None]


def event_from_json(line: str) -> Event:
    """Parse one ``--json-events`` line; unknown kinds become a Log so a newer child never breaks the GUI."""
    data = json.loads(line)
    kind = data.pop("event", "log")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return Log(message=f"unknown event {kind}: {data}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


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
