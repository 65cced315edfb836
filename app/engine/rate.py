"""Steps per second and time left, for every progress event (training steps, denoising steps).

One tracker so the training and generation progress bars count the same way: the rate is measured
between ticks, so the first tick (which includes warm-up: model upload, first CUDA kernels) is a start
mark and never counted as a step's duration.
"""

from __future__ import annotations

import time


class RateTracker:
    """Call ``tick()`` after each step; it returns the recent rate in steps per second (None after one tick).

    ``window``: how many recent steps the rate is taken over (None: every step since the first tick).
    """

    def __init__(self, window: int | None = 20) -> None:
        self.window = window
        self.start = time.monotonic()
        self.times: list[float] = []

    def tick(self) -> float | None:
        self.times.append(time.monotonic())
        recent = self.times if self.window is None else self.times[-(self.window + 1) :]
        return _rate(recent)

    def overall(self) -> float | None:
        """The rate over every step since the first tick."""
        return _rate(self.times)

    def elapsed(self) -> float:
        return (self.times[-1] if self.times else time.monotonic()) - self.start

    @staticmethod
    def eta(remaining: int, rate: float | None) -> float | None:
        """Seconds left for ``remaining`` steps at ``rate`` (None while the rate is unknown)."""
        return remaining / rate if rate else None


def _rate(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    return (len(times) - 1) / max(1e-9, times[-1] - times[0])
