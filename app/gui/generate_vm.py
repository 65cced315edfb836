"""GenerateViewModel: prompt and settings, the base-model worker, results into the gallery.

The worker thread keeps the pipeline loaded; the stack comes from the shelf model at the moment
Generate is pressed, so toggles and weights apply to the next image without a reload.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from app.engine import facade
from app.engine.facade import Finished, GenerateConfig, ImageReady, Log, Preview, Progress
from app.gui import session
from app.gui.gallery import GalleryImage, GalleryModel
from app.gui.generate_worker import WorkerThread
from app.gui.shelf_model import ShelfModel


class GenerateState(StrEnum):
    NO_MODEL = "no-model"
    LOADING = "loading"  # the base model loads in the background
    READY = "ready"
    GENERATING = "generating"


MAX_SEED = int(facade.generate_settings()["seed"].maximum)  # 2³²−1, A1111's seeds

# GenerateConfig's fields with a widget of their own on the Generate tab or its input panel; the others are its
# "More settings", built from the config (``more_settings``).
HAND_PLACED = ("prompt", "negative", "seed", "steps", "guidance", "width", "height", "sampler", "batch_count",
               "insert_triggers", "strength", "resize_mode", "mask_blur", "inpaint_area", "inpaint_padding",
               "masked_content")  # fmt: skip


class GenerateViewModel(QObject):
    stateChanged = Signal(str)  # a GenerateState
    paramsChanged = Signal()
    seedChanged = Signal(object)  # seeds reach 2³²−1, past a C++ int (Signal(int) overflowed and crashed)
    progressChanged = Signal(int, int)
    previewReady = Signal(str)
    imageReady = Signal(str)
    finished = Signal(bool)  # cancelled?
    message = Signal(str)
    errorRaised = Signal(str, str)
    baseLoaded = Signal(str)
    historyChanged = Signal()  # the recent prompts changed

    def __init__(self, shelf: ShelfModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.shelf = shelf
        self.params = facade.GenerateConfig()  # the defaults the CLI has too
        self.params.seed = random.randint(0, MAX_SEED)
        self.seed_locked = False
        self.gallery = GalleryModel(self)
        self.state = GenerateState.NO_MODEL
        self.base_path = ""
        self.last_results: list[Any] = []
        self._run_params: GenerateConfig | None = None
        # A batch restyle's images each came from another input picture, which ``_run_params`` does not name:
        # their settings are read back from their PNGs (input found by hash), never taken from memory.
        self._run_is_batch = False
        self._cancelled = False
        self._started_at = 0.0
        self.thread: WorkerThread | None = None  # started on the first base-model load
        self.prompt_history: list[str] = session.load_history()
        from app.gui.input_image_vm import InputImageModel  # here: it refers back to this module

        self.inputs = InputImageModel(self)  # the input picture and mask (image to image, inpainting)
        shelf.stackChanged.connect(self._stack_changed)
        self.restore_session()

    def _worker(self):
        if self.thread is None:
            self.thread = WorkerThread(self)
            w = self.thread.worker
            w.loaded.connect(self._loaded)
            w.loadFailed.connect(self._load_failed)
            w.event.connect(self._on_event)
            w.done.connect(self._done)
            w.failed.connect(self._failed)
            self.thread.start()
        return self.thread.worker

    # ------------------------------------------------------------------ session (what a restart brings back)
    def more_settings(self) -> list[Any]:
        """The settings records of the "More settings" form: every GenerateConfig field not placed by hand
        (nor marked ``form=False``), so a new field is editable, and saved with the session, with no GUI edit."""
        return facade.generate_form_settings(HAND_PLACED)

    def restore_session(self) -> None:
        saved = session.load_generate({s.name: s for s in self.more_settings()})
        if saved.get("sampler") not in facade.sampler_names():
            saved.pop("sampler", None)
        for name, value in saved.items():
            if name != "seed_locked":
                setattr(self.params, name, float(value) if name == "guidance" else value)
        if self.params.seed is None:
            self.params.seed = random.randint(0, MAX_SEED)
        self.seed_locked = bool(saved.get("seed_locked", False))
        self.paramsChanged.emit()

    def save_session(self) -> None:
        session.save_generate(self.params, self.seed_locked, [s.name for s in self.more_settings()])

    def reuse_prompt(self, prompt: str) -> None:
        """One click on a recent prompt: it becomes the prompt."""
        self.set_param("prompt", prompt)
        self.paramsChanged.emit()

    def shutdown(self) -> None:
        if self.thread is not None:
            self.thread.stop()

    # ------------------------------------------------------------------ base model
    def load_base(self, path: str) -> None:
        if not path:
            self.base_path = ""
            self._set_state(GenerateState.NO_MODEL)
            return
        self.base_path = path
        self._set_state(GenerateState.LOADING)
        self.message.emit(f"Loading {Path(path).name} in the background…")
        self._worker().request_load(path)

    # Decorated: the worker thread's signals are queued here, onto the UI thread.
    @Slot(str)
    def _loaded(self, path: str) -> None:
        if path != self.base_path:
            return  # a newer pick is on its way
        self._set_state(GenerateState.READY)
        self.message.emit(f"Base model ready: {Path(path).name}")
        self.baseLoaded.emit(path)

    @Slot(str, str)
    def _load_failed(self, message: str, details: str) -> None:
        self._set_state(GenerateState.NO_MODEL)
        self.errorRaised.emit(message, details)

    # ------------------------------------------------------------------ parameters
    def set_param(self, name: str, value: Any) -> None:
        if getattr(self.params, name) != value:
            setattr(self.params, name, value)
            if name == "seed":
                self.seedChanged.emit(int(value))

    def roll_seed(self) -> int:
        self.set_param("seed", random.randint(0, MAX_SEED))
        return int(self.params.seed)

    def set_seed_locked(self, locked: bool) -> None:
        self.seed_locked = locked

    def apply(self, params: GenerateConfig) -> list[str]:
        """'Use these settings' / a dropped PNG: restore prompt, settings and stack; returns missing adapters."""
        stack = list(params.stack)
        # A copy, not dataclasses.replace: that re-checks the config, and a PNG may name a setting this
        # version refuses (an unknown sampler): it is restored and shown, and Generate says what is wrong.
        restored = copy.copy(params)
        restored.stack, restored.batch_count = [], self.params.batch_count
        restored.insert_triggers = self.params.insert_triggers
        self.params = restored
        if params.seed is None:
            self.params.seed = self.params.seed if self.params.seed is not None else random.randint(0, MAX_SEED)
        if not self.params.sampler:
            self.params.sampler = facade.sampler_names()[0]
        self.seed_locked = True  # restoring a picture means "this seed"
        self.paramsChanged.emit()
        missing = self.shelf.apply_stack(stack)
        if missing:
            hashes = {e.name or Path(e.path).name: e.sha256 for e in stack}  # the hash tells which version to find
            shown = [f"{name} (sha256 {hashes[name][:12]}…)" if hashes.get(name) else name for name in missing]
            self.errorRaised.emit(f"Not on the shelf, so left out: {', '.join(shown)}", "")
        return missing

    def load_previous_images(self, limit: int = 200) -> int:
        """Put images from earlier sessions in the gallery (oldest first, so the newest ends on top)."""
        folder = facade.gallery_dir()
        files = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime)[-limit:] if folder.is_dir() else []
        for f in files:
            stem_seed = f.stem.split("-")[-1]
            self.gallery.add(GalleryImage(str(f), int(stem_seed) if stem_seed.isdigit() else 0, None))
        return len(files)

    def use_image_settings(self, image: GalleryImage) -> None:
        """'Use these settings': from memory for this session's images, else from the PNG itself."""
        if image.params is not None:
            self.apply(image.params)
        else:
            self.restore_from_png(image.path)

    def restore_from_png(self, path: str) -> None:
        try:
            params, missing = facade.read_png_restore(path)
        except Exception as exc:  # noqa: BLE001
            from app.gui.errors import describe_exception

            self.errorRaised.emit(*describe_exception(exc))
            return
        self.apply(params)
        self.message.emit(f"Restored the settings of {Path(path).name}")
        notes = facade.stack_version_notes(list(params.stack))  # "made with an earlier version of …"
        missing = [*missing, *notes]  # an img2img input not on this machine; a style that changed since
        if missing:
            self.errorRaised.emit(" ".join(missing), "\n".join(missing))

    # ------------------------------------------------------------------ running
    def can_generate(self) -> tuple[bool, str]:
        if self.state == GenerateState.NO_MODEL:
            return False, "Pick a base model first (File → Open base model…)."
        if self.state == GenerateState.LOADING:
            return False, "The base model is still loading…"
        if self.state == GenerateState.GENERATING:
            return False, "Already generating."
        return True, ""

    def generate(self) -> None:
        ok, why = self.can_generate()
        if not ok:
            self.errorRaised.emit(why, "")
            return
        if not self.seed_locked:
            self.roll_seed()
        self.prompt_history = session.remember_prompt(self.params.prompt)
        self.historyChanged.emit()
        self.save_session()
        run = self.run_params(stack=self.shelf.stack_entries())
        if run is None:
            return
        self._run_params, self._run_is_batch = run, False
        self._cancelled = False
        self._started_at = time.monotonic()
        self._set_state(GenerateState.GENERATING)
        out_dir = facade.gallery_dir()
        out_dir.mkdir(parents=True, exist_ok=True)
        self._worker().request_generate(run, str(out_dir))

    def run_params(self, **changes: Any) -> GenerateConfig | None:
        """The settings for a run (a checked copy of ``params`` with ``changes``), or None with errorRaised
        when a setting is not valid (a config is checked when it is built)."""
        try:
            return dataclasses.replace(self.params, **changes)
        except facade.UserError as err:
            self.errorRaised.emit(str(err), "")
            return None

    def _stack_changed(self) -> None:
        """A toggle, weight or order changed: let the loaded engine re-patch for the next image now, in the
        background, so pressing Generate does not wait for it. Only a head start: errors are the run's to tell."""
        worker = self.thread.worker if self.thread is not None else None
        session = getattr(worker, "session", None)
        if session is not None and self.state in (GenerateState.READY, GenerateState.GENERATING):
            session.prepare_stack(self.shelf.stack_entries())

    def cancel(self) -> None:
        if self.state == GenerateState.GENERATING:
            self._cancelled = True
            self._worker().cancel()
            self.message.emit("Cancelling…")

    @Slot(object)
    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, Progress):
            self.progressChanged.emit(ev.step, ev.total)
        elif isinstance(ev, Preview):
            if ev.path:
                self.previewReady.emit(ev.path)
        elif isinstance(ev, ImageReady):
            params = None if self._run_is_batch else dataclasses.replace(self._run_params or self.params, seed=ev.seed)
            self.gallery.add(GalleryImage(ev.path, ev.seed, params))
            self.imageReady.emit(ev.path)
        elif isinstance(ev, Finished):
            self._cancelled = self._cancelled or ev.cancelled
        elif isinstance(ev, Log):
            self.message.emit(ev.message)

    @Slot(list)
    def _done(self, results: list) -> None:
        self.last_results = results
        self._set_state(GenerateState.READY)
        took = time.monotonic() - self._started_at
        self.message.emit(
            "Cancelled." if self._cancelled else f"Done in {took:.1f} s · saved in {facade.gallery_dir()}"
        )
        self.finished.emit(self._cancelled)

    @Slot(str, str)
    def _failed(self, message: str, details: str) -> None:
        self._set_state(GenerateState.READY if self.base_path else GenerateState.NO_MODEL)
        self.errorRaised.emit(message, details)
        self.finished.emit(False)

    def _set_state(self, state: GenerateState) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)
