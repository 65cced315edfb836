"""Python's cycle collector, run on the UI thread only.

CPython starts a cyclic collection in whichever thread happens to cross the allocation threshold. In this
app that is often a worker thread (the generator loading a model allocates a lot), and the collection then
destroys Qt wrappers that belong to the UI thread: a segfault inside "Garbage-collecting" (seen once in the
test run, while the generate worker loaded the base model). So automatic collection is switched off and the
same generational thresholds are checked from a UI-thread timer instead: every cycle dies on the UI thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500


class UiThreadGarbageCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect_due)
        gc.disable()
        self.timer.start()

    def collect_due(self) -> None:
        """Collect the generations whose allocation counts passed their thresholds, as CPython would."""
        counts = gc.get_count()
        generation = -1
        for level, (count, limit) in enumerate(zip(counts, self.threshold)):
            if count > limit:
                generation = level
        if generation >= 0:
            gc.collect(generation)

    def stop(self) -> None:
        self.timer.stop()
        gc.enable()


_installed: UiThreadGarbageCollector | None = None


def install() -> UiThreadGarbageCollector:
    """Switch to UI-thread collection for the life of the QApplication (idempotent; needs the app)."""
    global _installed
    if _installed is None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("create the QApplication first")
        _installed = UiThreadGarbageCollector(app)
    return _installed


def uninstall() -> None:
    """Back to CPython's automatic collection (tests that leave the GUI behind)."""
    global _installed
    if _installed is not None:
        _installed.stop()
        _installed.deleteLater()
        _installed = None
