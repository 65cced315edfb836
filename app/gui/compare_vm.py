"""CompareViewModel: a comparison grid from the Generate tab's settings and shelf, streamed cell by cell.

The grid runs on the Generate tab's worker thread (a small QObject moved there), so it uses the base model
already loaded and never overlaps a generation. Each finished cell arrives as ``cellReady``; a grid PNG
dropped on the app is turned back into the same comparison (axes, settings, cells) by ``restore``.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.engine import facade
from app.engine.facade import CancelToken, Finished, ImageReady, Progress
from app.gui.errors import describe_exception
from app.gui.generate_vm import GenerateViewModel


class CompareState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"  # a grid is being rendered


class _GridWorker(QObject):
    """Lives on the generation worker thread; runs one grid at a time with the loaded session."""

    event = Signal(object)
    done = Signal(object)
    failed = Signal(str, str)
    validated = Signal(object)  # {step: (base loss, adapter loss)}
    _run = Signal(object)
    _validate = Signal(str)

    def __init__(self, session_of) -> None:
        super().__init__()
        self._session_of = session_of
        self.cancel_token = CancelToken()
        self._run.connect(self._do_run)
        self._validate.connect(self._do_validate)

    @Slot(str)
    def _do_validate(self, adapter: str) -> None:
        try:
            figures = facade.validate_checkpoints(adapter)
        except Exception as exc:  # noqa: BLE001 - the grid is still useful without the figures
            self.failed.emit(*describe_exception(exc))
            return
        self.validated.emit(figures)

    @Slot(object)
    def _do_run(self, config: Any) -> None:
        session = self._session_of()
        if session is None:
            self.failed.emit("The base model is not loaded yet.", "")
            return
        try:
            result = facade.run_comparison(session, config, on_event=self.event.emit, cancel=self.cancel_token)
        except Exception as exc:  # noqa: BLE001 - reported on the UI thread, the app lives on
            self.failed.emit(*describe_exception(exc))
            return
        self.done.emit(result)


class CompareViewModel(QObject):
    planned = Signal()  # shape and labels are known (a run started, or a grid was restored)
    cellReady = Signal(int, int, int, str)  # x, y, z, PNG
    progressChanged = Signal(int, int)  # cells done, cells
    stateChanged = Signal(str)
    finished = Signal(str, bool)  # grid PNG ("" when cancelled), cancelled?
    message = Signal(str)
    errorRaised = Signal(str, str)
    adapterKept = Signal(str)  # a checkpoint became the style's file on the shelf
    figuresReady = Signal()  # held-out losses of the checkpoints on the columns

    def __init__(self, generate_vm: GenerateViewModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.generate_vm = generate_vm
        self.axes = {"X": "", "Y": "", "Z": ""}
        self.shape = (0, 0, 0)
        self.labels: dict[str, list[str]] = {"X": [], "Y": [], "Z": []}
        self.cells: dict[tuple[int, int, int], str] = {}
        self.grid_path = ""
        self.state = CompareState.IDLE
        self._positions: list[list[int]] = []
        self._worker: _GridWorker | None = None
        self.figures: dict[int, tuple[float, float]] = {}  # step -> (base, adapter) held-out loss

    # ------------------------------------------------------------------ running
    def start(self, x: str, y: str = "", z: str = "") -> bool:
        """Render the grid; False (with errorRaised) when the axes or the model are not ready."""
        self.axes = {"X": x.strip(), "Y": y.strip(), "Z": z.strip()}
        ok, why = self.generate_vm.can_generate()
        if self.state == CompareState.RUNNING:
            ok, why = False, "A comparison is already running."
        if not ok:
            self.errorRaised.emit(why, "")
            return False
        gen = self.generate_vm
        try:
            fixed = dataclasses.replace(gen.params, stack=gen.shelf.stack_entries(), batch_count=1)
            config = facade.grid_config(x, y, z, generate=fixed)
        except facade.UserError as err:
            self.errorRaised.emit(str(err), "")
            return False
        self.cells, self.grid_path, self.figures = {}, "", {}
        self._set_state(CompareState.RUNNING)
        worker = self._ensure_worker()
        worker.cancel_token = CancelToken()
        worker._run.emit(config)
        return True

    def cancel(self) -> None:
        if self.state == CompareState.RUNNING and self._worker is not None:
            self._worker.cancel_token.cancel()
            self.message.emit("Cancelling the comparison…")

    def _ensure_worker(self) -> _GridWorker:
        if self._worker is None:
            session_owner = self.generate_vm._worker()  # the thread that holds the loaded base
            thread = self.generate_vm.thread
            worker = _GridWorker(lambda: session_owner.session)
            worker.moveToThread(thread)
            worker.event.connect(self._on_event)
            worker.done.connect(self._done)
            worker.failed.connect(self._failed)
            worker.validated.connect(self._validated)
            self._worker = worker
        return self._worker

    @Slot(object)
    def _on_event(self, ev: Any) -> None:
        if ev.kind == "grid-started":
            self.shape = tuple(ev.shape)
            self.labels = {k: list(ev.labels.get(k, [])) for k in ("X", "Y", "Z")}
            self._positions = ev.positions
            self.planned.emit()
        elif isinstance(ev, ImageReady) and ev.index < len(self._positions):
            x, y, z = self._positions[ev.index]
            self.cells[(x, y, z)] = ev.path
            self.cellReady.emit(x, y, z, ev.path)
        elif isinstance(ev, Progress) and ev.phase == "grid":
            self.progressChanged.emit(ev.step, ev.total)
        elif isinstance(ev, Finished):
            self.grid_path = ev.output

    @Slot(object)
    def _done(self, result: Any) -> None:
        self._set_state(CompareState.IDLE)
        cancelled = bool(getattr(result, "cancelled", False))
        self.message.emit("Comparison cancelled." if cancelled else f"Comparison saved as {self.grid_path}")
        self.finished.emit(self.grid_path, cancelled)
        adapter = self._checkpoint_adapter()
        if adapter and not cancelled:  # the run's own measure per checkpoint, beside the pictures
            self._ensure_worker()._validate.emit(adapter)

    @Slot(object)
    def _validated(self, figures: dict) -> None:
        self.figures = dict(figures)
        self.figuresReady.emit()

    def figures_text(self) -> str:
        if not self.figures:
            return ""
        base = next(iter(self.figures.values()))[0]
        parts = [f"step {s}: {a:.4f} ({(a - b) / b:+.1%})" for s, (b, a) in sorted(self.figures.items()) if b]
        return f"Held-out loss, base {base:.4f} → " + " · ".join(parts)

    def _checkpoint_adapter(self) -> str:
        kind, target = facade.axis_kind_and_target(self.axes["X"])
        if kind != "checkpoint":
            return ""
        stack = {Path(e.path).stem: e.path for e in self.generate_vm.shelf.stack_entries()}
        return stack.get(target, target)

    @Slot(str, str)
    def _failed(self, message: str, details: str) -> None:
        self._set_state(CompareState.IDLE)
        self.errorRaised.emit(message, details)
        self.finished.emit("", False)

    def _set_state(self, state: CompareState) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # ------------------------------------------------------------------ cells
    def cell_settings(self, x: int, y: int, z: int) -> Any:
        return facade.read_png_parameters(self.cells[(x, y, z)])

    def use_settings(self, x: int, y: int, z: int) -> None:
        """Prompt, settings, the stack and its strengths of that cell onto the Generate tab and the shelf."""
        try:
            params = self.cell_settings(x, y, z)
        except Exception as exc:  # noqa: BLE001
            self.errorRaised.emit(*describe_exception(exc))
            return
        self.generate_vm.apply(params)
        self.message.emit(f"Using the settings of {Path(self.cells[(x, y, z)]).name}")

    def checkpoint_step(self, x: int) -> int | None:
        """The training step of column ``x`` when the columns are a run's checkpoints ("step 200"), else None."""
        kind, _ = facade.axis_kind_and_target(self.axes["X"])
        labels = self.labels["X"]
        if kind != "checkpoint" or x >= len(labels) or not labels[x].startswith("step "):
            return None
        return int(labels[x].split()[1])

    def keep(self, x: int, y: int = 0, z: int = 0) -> str:
        """ "Keep this one": column ``x``'s checkpoint becomes the style's adapter file; returns its path."""
        step = self.checkpoint_step(x)
        if step is None:
            return ""
        adapter = self._checkpoint_adapter()
        try:
            path = facade.keep_checkpoint(adapter, step)
        except Exception as exc:  # noqa: BLE001
            self.errorRaised.emit(*describe_exception(exc))
            return ""
        self.message.emit(f"Kept step {step}: {Path(path).name} on the shelf is now that checkpoint.")
        self.adapterKept.emit(path)
        return path

    # ------------------------------------------------------------------ a grid PNG dropped on the app
    def restore(self, path: str) -> bool:
        """Axes, settings and cells of a grid PNG; False when the image is not a StyleShelf grid."""
        try:
            record = facade.read_grid_png(path)
        except facade.UserError:
            return False  # not a readable PNG: the caller says so (or restores it as a picture)
        if record is None:
            return False
        cfg = record.config
        self.axes = {"X": cfg.x, "Y": cfg.y, "Z": cfg.z}
        self.shape, self.labels, self.grid_path = tuple(record.shape), dict(record.labels), str(path)
        self.cells = {pos: str(p) for pos, p in record.cells.items() if Path(p).is_file()}
        self.generate_vm.apply(cfg.generate)
        self.planned.emit()
        for (x, y, z), cell in sorted(self.cells.items()):
            self.cellReady.emit(x, y, z, cell)
        missing = len(record.cells) - len(self.cells)
        self.message.emit(f"Restored the comparison {Path(path).name}"
                          + (f" ({missing} cell files are gone)" if missing else ""))  # fmt: skip
        return True
