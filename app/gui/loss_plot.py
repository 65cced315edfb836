"""The live loss curve: raw loss faint, smoothed loss bold (pyqtgraph, fast for thousands of points)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from app.gui.theme import ACCENT


class LossPlot(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(None)  # follow the palette
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setLabel("bottom", "step")
        self.setLabel("left", "loss")
        self.getAxis("left").enableAutoSIPrefix(False)  # "loss (x0.001)" reads as a different number
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMinimumHeight(90)
        self._steps: list[float] = []
        self._loss: list[float] = []
        self._smooth_steps: list[float] = []
        self._smooth: list[float] = []
        self.raw_curve = self.plot(pen=pg.mkPen("#8a8d96", width=1))
        self.smooth_curve = self.plot(pen=pg.mkPen(ACCENT, width=2))

    def clear_points(self) -> None:
        self._steps, self._loss, self._smooth_steps, self._smooth = [], [], [], []
        self.raw_curve.setData([], [])
        self.smooth_curve.setData([], [])

    def set_history(self, losses: list[float]) -> None:
        """The curve of steps 1..N a resumed run already made, smoothed the way the trainer smooths it."""
        self._steps = list(range(1, len(losses) + 1))
        self._loss = [float(x) for x in losses]
        self._smooth, running = [], None
        for value in self._loss:
            running = value if running is None else 0.9 * running + 0.1 * value
            self._smooth.append(running)
        self._smooth_steps = list(self._steps)
        self.raw_curve.setData(self._steps, self._loss)
        self.smooth_curve.setData(self._smooth_steps, self._smooth)

    def add_point(self, step: int, loss: float | None, smoothed: float | None) -> None:
        if loss is not None:
            self._steps.append(step)
            self._loss.append(loss)
            self.raw_curve.setData(self._steps, self._loss)
        if smoothed is not None:
            self._smooth_steps.append(step)
            self._smooth.append(smoothed)
            self.smooth_curve.setData(self._smooth_steps, self._smooth)

    def point_count(self) -> int:
        return len(self._loss)
