"""TrainViewModel: everything the Train tab shows and does, with no widgets.

It owns the dataset model, the form values (from the training config's defaults and presets) and the
child-process runner, and turns runner events into signals the tab (or a test) listens to.
"""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.engine import facade
from app.engine.facade import (
    CheckpointSaved,
    Error,
    Level,
    Log,
    Phase,
    Progress,
    SampleReady,
    TrainFinished,
    TrainSummary,
)
from app.gui import train_session
from app.gui.background import run_in_background
from app.gui.dataset_model import DatasetModel
from app.gui.errors import describe_exception
from app.gui.train_runner import TrainRunner, child_cwd


class TrainState(StrEnum):
    IDLE = "idle"
    SCANNING = "scanning"  # reading a dataset folder
    RUNNING = "running"
    CANCELLING = "cancelling"  # Cancel asked; the child is saving


_PHASES = {Phase.CACHE: "Preparing images", Phase.SAMPLE: "Drawing samples", Phase.VALIDATE: "Checking what it learned"}
MIN_IMAGES = 5  # below this a style adapter mostly copies its few pictures
# Where the app's form starts other than the engine's (CLI) defaults: the app always shows a few samples.
_GUI_DEFAULTS = {"sample_count": 4}


class TrainViewModel(QObject):
    stateChanged = Signal(str)  # a TrainState
    valueChanged = Signal(str)  # a form value changed ("" = all of them)
    datasetLoaded = Signal(int, int)  # usable, skipped
    progressChanged = Signal(int, int, object, object)  # step, total, it/s, eta seconds
    lossPoint = Signal(int, object, object)  # step, loss, smoothed loss
    samplesReady = Signal(int, list)  # step, png paths
    validationReady = Signal(object, object)  # base loss, adapter loss
    message = Signal(str)  # a status line
    adapterReady = Signal(str)  # path of the finished (or cancelled, saved so far) adapter
    runEnded = Signal(bool)  # cancelled?
    presetSuggested = Signal(str)  # a preset applied for the base model (the form shows it as chosen)
    errorRaised = Signal(str, str)  # message, details
    lossHistory = Signal(list)  # the losses of steps 1..N a resumed run already made (the curve goes on)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset = DatasetModel(self)
        self.dataset.captionSaveFailed.connect(self.errorRaised)
        self.runner = TrainRunner(self)
        self.runner.event.connect(self._on_event)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.base_model = ""
        self.state = TrainState.IDLE
        self.settings: list[Any] = []
        self.presets: dict[str, dict[str, Any]] = {}
        self.values: dict[str, Any] = {}
        self.defaults: dict[str, Any] = {}
        self.output_path = ""
        self.auto_name = ""  # the name taken from the folder; a name the user typed is never replaced
        self.last_step = 0
        self.total_steps = 0
        self.last_checkpoint = ""
        self.samples: list[str] = []
        self.summary = TrainSummary()  # of the last run that ended
        self._run_dir: Path | None = None
        self._native_resolution = 0
        self._session_restored = False  # nothing is saved before the last session was read back
        self.load_settings()
        for signal in (self.valueChanged, self.datasetLoaded, self.runEnded):
            signal.connect(self.save_session)

    # ------------------------------------------------------------------ session
    def save_session(self, *_args: Any) -> None:
        # Not before restore_session: start-up (a preset suggested for the base) must not overwrite it.
        if self._session_restored and self.settings:
            train_session.save(self)

    def restore_session(self) -> None:
        """The form, dataset folder and an unfinished run as the app left them (see ``train_session``)."""
        train_session.restore(self)
        self._session_restored = True

    # ------------------------------------------------------------------ settings
    def load_settings(self) -> None:
        self.settings = facade.train_settings()
        self.presets = facade.train_presets()
        self.defaults = {s.name: _GUI_DEFAULTS.get(s.name, s.default) for s in self.settings}
        self.values = dict(self.defaults)
        self.valueChanged.emit("")

    def value(self, name: str) -> Any:
        return self.values.get(name)

    def set_value(self, name: str, value: Any) -> None:
        if self.values.get(name) != value:
            self.values[name] = value
            self.valueChanged.emit(name)

    def set_native_resolution(self, pixels: int) -> None:
        """Follow the base model's training size unless the user already chose a resolution.

        Training a 64 px demo model at SD's 512 px default would take 64× longer and learn nothing useful.
        """
        if not pixels or "resolution" not in self.values:
            return
        untouched = self.values["resolution"] in (self._native_resolution, self._default("resolution"))
        self._native_resolution = pixels
        if untouched:
            self.set_value("resolution", pixels)

    # Settings that name the run rather than shape the training: a suggestion may replace the others only.
    _IDENTITY = ("name", "dataset_dir", "base", "out", "trigger", "resolution")

    def suggest_preset(self, name: str) -> bool:
        """Apply preset ``name`` if the user has not changed any training setting yet; True when applied."""
        touched = any(v != self._default(k) for k, v in self.values.items() if k not in self._IDENTITY)
        if touched or name not in self.presets:
            return False
        self.apply_preset(name)
        self.presetSuggested.emit(name)
        return True

    def _default(self, name: str) -> Any:
        return self.defaults.get(name)

    def apply_preset(self, name: str) -> None:
        for key, value in self.presets.get(name, {}).items():
            if key in self.values:
                self.values[key] = value
        self.valueChanged.emit("")

    def adapter_name(self) -> str:
        if self.values.get("name"):
            return str(self.values["name"])
        return Path(self.dataset.folder).name if self.dataset.folder else "style"

    # ------------------------------------------------------------------ dataset
    def load_dataset(self, folder: str) -> None:
        folder = str(folder)
        self._set_state(TrainState.SCANNING)
        self.message.emit(f"Reading {Path(folder).name}…")
        limits = {"min_side": self.values.get("min_image_side"), "max_pixels": self.values.get("max_image_pixels")}
        run_in_background(lambda: facade.scan_dataset(folder, **limits), self._scanned, self._scan_failed)

    def load_files(self, files: list[str]) -> None:
        """Dropped loose images: copy them into a fresh dataset folder (captions travel with them)."""
        target = Path(tempfile.mkdtemp(prefix="dropped-", dir=_ensure(facade.adapters_dir().parent / "datasets")))
        for f in files:
            src = Path(f)
            shutil.copy2(src, target / src.name)
            if src.with_suffix(".txt").is_file():
                shutil.copy2(src.with_suffix(".txt"), target / src.with_suffix(".txt").name)
        self.load_dataset(str(target))

    def _scanned(self, summary: facade.DatasetSummary) -> None:
        self.dataset.set_summary(summary)
        if "name" in self.values and self.values.get("name") in (self._default("name"), "", self.auto_name):
            # A style is usually named after its folder: follow each new folder until the user types a name.
            self.auto_name = Path(summary.folder).name
            self.set_value("name", self.auto_name)
        self._set_state(TrainState.IDLE)
        usable, skipped = self.dataset.usable_count(), self.dataset.skipped_count()
        advice, _level = self.dataset_advice()
        self.message.emit(advice or f"{usable} usable images, {skipped} skipped")
        self.datasetLoaded.emit(usable, skipped)

    def dataset_advice(self) -> tuple[str, Level | None]:
        """(what to tell the artist about the chosen folder, how serious); ("", None) when all is well."""
        if not self.dataset.folder:
            return "", None
        usable, skipped = self.dataset.usable_count(), self.dataset.skipped_count()
        if usable == 0 and skipped == 0:
            return (
                "This folder has no pictures. Put 10–30 images of the style in it (PNG, JPEG or WebP; "
                "sub-folders count too), or choose another folder.",
                Level.WARNING,
            )
        if usable == 0:
            return (f"None of the {skipped} files can be used: hover a red badge to see why.", Level.WARNING)
        if usable < MIN_IMAGES:
            return (
                f"Only {usable} usable image{'s' if usable != 1 else ''}: a style needs at least {MIN_IMAGES} "
                "(10–30 is better), or the adapter just copies these pictures.",
                Level.WARNING,
            )
        return "", None

    def _scan_failed(self, exc: BaseException) -> None:
        self._set_state(TrainState.IDLE)
        self.dataset.clear()
        self.errorRaised.emit(*describe_exception(exc))

    # ------------------------------------------------------------------ running
    def can_start(self) -> tuple[bool, str]:
        if self.state != TrainState.IDLE:
            return False, "Training is already running."
        if not self.dataset.folder:
            return False, "Drop a folder of style images first."
        if self.dataset.usable_count() == 0:
            return False, "No usable image in this folder: hover the red badges to see why."
        if not self.base_model:
            return False, "Pick a base model first (File → Open base model)."
        return True, ""

    def start(self, *, resume: bool = False) -> None:
        ok, why = self.can_start()
        if not ok:
            self.errorRaised.emit(why, "")
            return
        out = (
            self.output_path
            if resume and self.output_path
            else str(_unused(facade.new_adapter_path(self.adapter_name())))
        )
        self.output_path = out
        if not resume:
            self.last_checkpoint = ""  # a fresh run starts its own checkpoint history
        self._run_dir = facade.adapters_dir().parent / "runs" / Path(out).stem
        argv = facade.train_child_argv(
            self.dataset.folder, self.base_model, out, self.values, run_dir=self._run_dir, resume=resume
        )
        self.samples, self.summary = [], TrainSummary()
        point = facade.train_resume_point(out) if resume else None
        self.last_step = point["step"] if point else 0
        self.total_steps = int(self.values.get("steps") or 0)
        self._set_state(TrainState.RUNNING)
        # The bar and the curve show where the run really is from the first moment, not "0 / 100".
        self.progressChanged.emit(self.last_step, self.total_steps, None, None)
        if point and point["losses"]:
            self.lossHistory.emit(list(point["losses"]))
        if point:
            train_session.show_earlier_samples(self, out, self.last_step)
        if resume:
            self.message.emit(f"Resuming at step {self.last_step} of {self.total_steps}…")
        else:
            self.message.emit("Starting training…")
            advice, level = self.dataset_advice()
            if level == Level.WARNING:
                self.message.emit(advice)
        self.start_argv(argv)

    def start_argv(self, argv: list[str]) -> None:
        """Run an exact command line (the real CLI, or a stand-in child in tests)."""
        self._set_state(TrainState.RUNNING)
        self.runner.start(argv, cwd=child_cwd())

    def resume(self) -> None:
        self.start(resume=True)

    def can_resume(self) -> bool:
        return self.state == TrainState.IDLE and bool(self.last_checkpoint) and bool(self.output_path)

    def cancel(self) -> None:
        if self.state == TrainState.RUNNING:
            self._set_state(TrainState.CANCELLING)
            self.message.emit("Stopping after this step…" if self.last_step else "Stopping…")
            self.runner.cancel()

    # ------------------------------------------------------------------ events from the child
    def _on_event(self, ev: Any) -> None:
        if isinstance(ev, Progress):
            if ev.phase == Phase.TRAIN:
                self.last_step, self.total_steps = ev.step, ev.total
                self.progressChanged.emit(ev.step, ev.total, ev.it_per_s, ev.eta_s)
                if ev.loss is not None:
                    self.lossPoint.emit(ev.step, ev.loss, ev.smoothed_loss)
            else:  # caching, sampling, validating: a status line, so the step bar only ever means steps
                self.message.emit(f"{_PHASES.get(ev.phase, ev.phase.capitalize())}: {ev.step}/{ev.total}")
        elif isinstance(ev, SampleReady):
            self.samples.extend(ev.paths)
            self.samplesReady.emit(
                ev.step, [(p, ev.prompts[i] if i < len(ev.prompts) else "") for i, p in enumerate(ev.paths)]
            )
        elif isinstance(ev, CheckpointSaved):
            self.last_checkpoint = ev.path
            self.save_session()  # if the app dies now, the run can still be resumed after a restart
            self.message.emit(f"Checkpoint saved at step {ev.step}")
        elif isinstance(ev, Log):
            self.message.emit(ev.message)
        elif isinstance(ev, Error):
            self.message.emit(ev.message)

    def _on_finished(self, ev: TrainFinished) -> None:
        self.summary = ev.summary
        base, adapter = self.summary.validation_loss_base, self.summary.validation_loss_adapter
        if base is not None or adapter is not None:
            self.validationReady.emit(base, adapter)
        self._set_state(TrainState.IDLE)
        if ev.cancelled:
            saved_adapter = bool(ev.output) and Path(ev.output).is_file()
            self.last_checkpoint = self.summary.checkpoint or self.last_checkpoint
            if saved_adapter:
                # The trainer saved the adapter as it stood: usable now, and Resume later updates the same card.
                self.output_path = str(ev.output)
                self.adapterReady.emit(self.output_path)
            self.message.emit(self.stop_message(saved_adapter))
        else:
            self.last_checkpoint = ""
            if ev.output:
                self.output_path = str(ev.output)
            self.message.emit(f"Done: {Path(self.output_path).name} is on the shelf.")
            self.adapterReady.emit(self.output_path)
        self.runEnded.emit(bool(ev.cancelled))

    def stop_message(self, saved_adapter: bool) -> str:
        """Exactly what a cancelled run kept, in the artist's words."""
        steps = self.summary.steps or self.last_step
        total = self.summary.total_steps or self.total_steps
        killed = self.summary.killed_after_s
        lead = (
            f"Training did not stop within {max(1, round(killed))} s of Cancel and was ended"
            if killed is not None
            else ""
        )
        where = f"step {steps} of {total}" if total else f"step {steps}"
        if saved_adapter:
            kept = "the adapter so far is on the shelf" + (
                " and a checkpoint was kept — Resume continues" if self.last_checkpoint else ""
            )
            return f"{lead or 'Stopped'} at {where}: {kept}."
        if self.last_checkpoint:
            checkpoint_step = _step_of(self.last_checkpoint)
            at = f"step {checkpoint_step}" if checkpoint_step is not None else "its last checkpoint"
            return (
                f"{lead or 'Stopped'}: nothing new was saved; the checkpoint at {at} was kept — Resume "
                "continues from there."
            )
        if lead:
            return f"{lead}: nothing was saved."
        return "Stopped before the first step: nothing was saved."

    def _on_failed(self, message: str, details: str) -> None:
        self._set_state(TrainState.IDLE)
        self.errorRaised.emit(message, details)
        self.runEnded.emit(False)

    def _set_state(self, state: TrainState) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)


def _step_of(checkpoint: str) -> int | None:
    name = Path(checkpoint).name
    return int(name[5:]) if name.startswith("step-") and name[5:].isdigit() else None


def _unused(path: Path) -> Path:
    """``style.safetensors``, else ``style-2.safetensors`` …: a new run never overwrites a finished style
    (or picks up another run's checkpoints)."""
    candidate, n = path, 2
    while candidate.exists() or candidate.with_name(candidate.stem + ".checkpoints").exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
