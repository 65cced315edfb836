"""The generation worker: a QObject on its own QThread that keeps one base pipeline loaded.

The UI thread calls ``request_load`` / ``request_generate`` (queued into the worker thread by signals);
engine events come back as the ``event`` signal, delivered on the UI thread. Cancel sets a thread-safe
token the engine checks every step.
"""

from __future__ import annotations

import atexit
import weakref
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from app.engine import facade
from app.engine.facade import CancelToken, GenerateConfig
from app.gui.errors import describe_exception


class GenerateWorker(QObject):
    loaded = Signal(str)  # base path
    loadFailed = Signal(str, str)
    event = Signal(object)
    done = Signal(list)  # whatever the engine returned (image records / paths)
    failed = Signal(str, str)
    _load = Signal(str)
    _generate = Signal(object, str)
    _batch = Signal(object, str, str)  # params, input folder, output folder

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.cancel_token = CancelToken()
        self._load.connect(self._do_load)
        self._generate.connect(self._do_generate)
        self._batch.connect(self._do_batch)

    # -- called from the UI thread
    def request_load(self, base_path: str) -> None:
        self._load.emit(base_path)

    def request_generate(self, params: GenerateConfig, out_dir: str) -> None:
        self.cancel_token = CancelToken()
        self._generate.emit(params, out_dir)

    def request_batch(self, params: GenerateConfig, in_dir: str, out_dir: str) -> None:
        self.cancel_token = CancelToken()
        self._batch.emit(params, in_dir, out_dir)

    def cancel(self) -> None:
        self.cancel_token.cancel()

    # -- run on the worker thread
    @Slot(str)
    def _do_load(self, base_path: str) -> None:
        self.session = None  # drop the old pipeline before loading the next one (memory)
        try:
            self.session = facade.GenerationSession(base_path)
        except Exception as exc:  # noqa: BLE001 - reported on the UI thread, the app lives on
            self.loadFailed.emit(*describe_exception(exc))
            return
        self.loaded.emit(base_path)

    @Slot(object, str)
    def _do_generate(self, params: GenerateConfig, out_dir: str) -> None:
        if self.session is None:
            self.failed.emit("The base model is not loaded yet.", "")
            return
        try:
            results = self.session.generate(params, out_dir, on_event=self.event.emit, cancel=self.cancel_token)
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(*describe_exception(exc))
            return
        self.done.emit(list(results or []))

    @Slot(object, str, str)
    def _do_batch(self, params: GenerateConfig, in_dir: str, out_dir: str) -> None:
        if self.session is None:
            self.failed.emit("The base model is not loaded yet.", "")
            return
        try:
            results = self.session.restyle_folder(params, in_dir, out_dir, on_event=self.event.emit,
                                                  cancel=self.cancel_token)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(*describe_exception(exc))
            return
        self.done.emit(list(results or []))


_threads: "weakref.WeakSet[WorkerThread]" = weakref.WeakSet()


class WorkerThread(QThread):
    """Owns the worker; ``stop()`` ends the thread cleanly (also at quit and interpreter exit, since
    Qt aborts the process when a running QThread is destroyed)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("generate-worker")
        self.worker = GenerateWorker()
        self.worker.moveToThread(self)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)
        _threads.add(self)

    def stop(self) -> None:
        self.worker.cancel()
        if self.isRunning():
            self.quit()
            self.wait(120_000)


@atexit.register
def _stop_all() -> None:
    for thread in list(_threads):
        try:
            thread.stop()
        except RuntimeError:  # the C++ side is already gone
            pass
