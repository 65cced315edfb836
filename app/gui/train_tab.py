"""The Train tab: drop a folder of style images, tune a few settings, watch it learn.

Pure view: all state lives in ``TrainViewModel``; this widget lays it out and forwards clicks and drops.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui.background import run_in_background
from app.gui.dataset_view import DatasetGrid
from app.gui.errors import describe_exception
from app.gui.sample_strip import SampleStrip
from app.gui.settings_form import SettingsForm
from app.gui.train_vm import TrainState, TrainViewModel

_DROP_HINT = (
    "Drop a folder (or images) here\n\nCaptions come from .txt files beside the images\n"
    "and can be edited by double-clicking them."
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def format_eta(seconds: float | None) -> str:
    """Time left in words ("about 22 min left"): "22:35" reads like a clock time."""
    if seconds is None or seconds < 0:
        return "time left: working it out"
    seconds = int(round(seconds))
    if seconds < 60:
        return "less than a minute left" if seconds > 10 else "a few seconds left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    h, m = divmod(minutes, 60)
    return f"about {h} h {m} min left" if m else f"about {h} h left"


class TrainTab(QWidget):
    titleChanged = Signal(str)  # the tab's label: "Train", or "Train · 45 %" while it runs
    compareCheckpointsRequested = Signal(str, list, str)  # adapter, dataset captions, trigger

    def __init__(self, vm: TrainViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setAcceptDrops(True)

        # ---- left: the dataset
        self.pick_button = QPushButton("Choose folder…")
        self.pick_button.setToolTip("Pick a folder of style images (you can also drop one anywhere on this tab)")
        self.pick_button.clicked.connect(self.choose_folder)
        self.folder_label = QLabel("Drop a folder of style images here")
        self.folder_label.setObjectName("Heading")
        self.counts_label = QLabel("")
        self.counts_label.setObjectName("Muted")
        self.advice_label = QLabel("")  # too few images, an empty folder: said in words, not left to guess
        self.advice_label.setObjectName("Badge")
        self.advice_label.setProperty("warn", True)
        self.advice_label.setWordWrap(True)
        self.advice_label.setVisible(False)
        head = QHBoxLayout()
        head.addWidget(self.folder_label, 1)
        head.addWidget(self.pick_button)
        self.grid = DatasetGrid()
        self.grid.setModel(vm.dataset)
        self.drop_hint = QLabel(_DROP_HINT)
        self.drop_hint.setWordWrap(True)
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setObjectName("Muted")
        hint_frame = QFrame()
        hint_frame.setObjectName("DropHint")
        QVBoxLayout(hint_frame).addWidget(self.drop_hint)
        self.hint_frame = hint_frame
        dataset_panel = QWidget()
        left_layout = QVBoxLayout(dataset_panel)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(head)
        left_layout.addWidget(self.counts_label)
        left_layout.addWidget(self.advice_label)
        left_layout.addWidget(hint_frame, 1)
        left_layout.addWidget(self.grid, 1)

        # ---- right: settings and the run
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Custom", "")
        for name in vm.presets:
            self.preset_combo.addItem(name.capitalize(), name)
        self.preset_combo.setToolTip(
            "Fast style: a quick first look. Quality style: longer, bigger, smoother. "
            "Demo model: what trained the bundled styles on the demo model."
        )
        self.preset_combo.activated.connect(self._preset_chosen)
        vm.presetSuggested.connect(lambda name: self.preset_combo.setCurrentIndex(self.preset_combo.findData(name)))
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset"))
        preset_row.addWidget(self.preset_combo, 1)
        self.form = SettingsForm(vm.settings, vm.value, vm.set_value)
        form_scroll = QScrollArea()
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        form_holder = QWidget()
        form_layout = QVBoxLayout(form_holder)
        form_layout.setContentsMargins(0, 0, 4, 0)
        form_layout.addLayout(preset_row)
        form_layout.addWidget(self.form)
        form_layout.addStretch(1)
        form_scroll.setWidget(form_holder)
        self.form_scroll = form_scroll

        self.start_button = QPushButton("Train")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip("Train the adapter in the background (Ctrl+Return)")
        self.start_button.clicked.connect(lambda: vm.start())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop after the current step: the adapter so far goes on the shelf and a "
            "checkpoint is kept, so Resume can continue"
        )
        self.cancel_button.clicked.connect(vm.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run from its checkpoint (the loss curve goes on)")
        self.resume_button.clicked.connect(vm.resume)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)
        self.compare_button = QPushButton("Compare checkpoints")
        self.compare_button.setToolTip("A grid of this run's checkpoints (and the base) on a few of its captions")
        self.compare_button.setVisible(False)  # offered once a run has ended
        self.compare_button.clicked.connect(self._compare_checkpoints)
        vm.runEnded.connect(lambda _c: self.compare_button.setVisible(bool(self.vm.output_path)))

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m steps")
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("Muted")
        # pyqtgraph (with numpy) costs ~0.4 s to import: the curve is built just after the window shows.
        self.loss_plot = None
        self.plot_holder = QVBoxLayout()
        self.plot_holder.setContentsMargins(0, 0, 0, 0)
        self._pending_points: list[tuple] = []
        QTimer.singleShot(400, self.ensure_plot)  # after the first paint, so it never delays the window
        self.validation_label = QLabel("")
        self.validation_label.setWordWrap(True)
        self.samples = SampleStrip()
        self.samples.thumbnailChosen.connect(self._use_as_thumbnail)
        samples_title = QLabel("Samples (left: base model · right: with the adapter)")
        samples_title.setObjectName("Muted")

        # The right column: the form on top (it scrolls only when Advanced is open), the run's controls below.
        controls = QWidget()
        controls_layout = QVBoxLayout(controls)
        controls_layout.setContentsMargins(0, 0, 0, 0)
        controls_layout.addWidget(form_scroll, 1)
        controls_layout.addLayout(buttons)
        controls_layout.addWidget(self.compare_button)  # own row: beside the run buttons its label was cut
        controls_layout.addWidget(self.progress)
        controls_layout.addWidget(self.rate_label)
        controls.setMinimumWidth(340)
        controls.setMaximumWidth(460)

        # Below the dataset: what the run shows, growing into all the room that is left.
        run_panel = QWidget()
        run_layout = QVBoxLayout(run_panel)
        run_layout.setContentsMargins(0, 0, 0, 0)
        run_layout.addLayout(self.plot_holder, 1)
        run_layout.addWidget(self.validation_label)
        run_layout.addWidget(samples_title)
        run_layout.addWidget(self.samples)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(dataset_panel)
        left.addWidget(run_panel)
        left.setStretchFactor(0, 1)
        left.setStretchFactor(1, 1)
        left.setChildrenCollapsible(False)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(controls)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        vm.valueChanged.connect(self._value_changed)
        vm.stateChanged.connect(self._state_changed)
        vm.datasetLoaded.connect(self._dataset_loaded)
        vm.progressChanged.connect(self._progress)
        vm.lossPoint.connect(self._loss_point)
        vm.samplesReady.connect(self.samples.add)
        vm.lossHistory.connect(self._loss_history)
        vm.adapterReady.connect(self._adapter_ready)
        vm.validationReady.connect(self._validation)
        vm.runEnded.connect(self._run_ended)
        self._dataset_loaded(0, 0)
        self._refresh_buttons()

    # ------------------------------------------------------------------ actions
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of style images")
        if folder:
            self.vm.load_dataset(folder)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index) or ""
        self.vm.apply_preset(name)
        self.preset_combo.setCurrentIndex(index)  # apply_preset's refresh must not flip it back to Custom

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def open_paths(self, paths: list[str]) -> None:
        """What a drop does: a folder opens as the dataset; loose images become one."""
        folders = [p for p in paths if Path(p).is_dir()]
        if folders:
            self.vm.load_dataset(folders[0])
            return
        images = [p for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        if images:
            self.vm.load_files(images)
        elif paths:
            self.vm.errorRaised.emit("Drop a folder of images (or image files) to train on.", "\n".join(paths))

    def ensure_plot(self):
        if self.loss_plot is None:
            from app.gui.loss_plot import LossPlot

            self.loss_plot = LossPlot()
            self.plot_holder.addWidget(self.loss_plot)
        return self.loss_plot

    # ------------------------------------------------------------------ view updates
    def _loss_point(self, step: int, loss: object, smoothed: object) -> None:
        self.ensure_plot().add_point(step, loss, smoothed)

    def _loss_history(self, losses: list) -> None:
        self.ensure_plot().set_history(losses)

    def _adapter_ready(self, _path: str) -> None:
        self.samples.can_choose = True

    def _use_as_thumbnail(self, sample: str) -> None:
        adapter = self.vm.output_path
        if not adapter:
            return
        run_in_background(
            lambda: facade.use_sample_as_thumbnail(adapter, sample),
            lambda _card: self.vm.adapterReady.emit(adapter),
            lambda exc: self.vm.errorRaised.emit(*describe_exception(exc)),
        )

    def _value_changed(self, name: str) -> None:
        self.form.refresh(name or None)
        # Editing a value the preset set means the settings are now the user's own: show "Custom".
        current = self.preset_combo.currentData()
        if current and any(self.vm.value(k) != v for k, v in self.vm.presets.get(current, {}).items()):
            self.preset_combo.setCurrentIndex(0)

    def _dataset_loaded(self, usable: int, skipped: int) -> None:
        has = bool(self.vm.dataset.folder)
        empty = has and usable + skipped == 0
        self.hint_frame.setVisible(not has or empty)  # an empty folder explains itself, not a blank grid
        self.grid.setVisible(has and not empty)
        advice, level = self.vm.dataset_advice()
        self.advice_label.setText(advice)
        self.advice_label.setVisible(
            bool(advice) and level == facade.Level.WARNING and not empty
        )  # else the hint says it
        if has:
            self.folder_label.setText(Path(self.vm.dataset.folder).name)
            self.counts_label.setText(
                f"{usable} usable · {skipped} skipped" + ("  (hover a red badge for why)" if skipped else "")
            )
        self.drop_hint.setText(advice if empty else _DROP_HINT)
        self._refresh_buttons()

    def _progress(self, step: int, total: int, it_s: object, eta: object) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)
        if isinstance(it_s, (int, float)):
            self.rate_label.setText(
                f"{it_s:.2f} steps/s · {format_eta(eta if isinstance(eta, (int, float)) else None)}"
            )
        self._update_title()

    def _update_title(self) -> None:
        busy = self.vm.state in (TrainState.RUNNING, TrainState.CANCELLING) and self.progress.maximum() > 1
        percent = int(100 * self.progress.value() / max(1, self.progress.maximum()))
        self.titleChanged.emit(f"Train · {percent} %" if busy else "Train")

    def _compare_checkpoints(self) -> None:
        captions = [e.caption for e in self.vm.dataset.entries() if not e.skipped_reason]
        self.compareCheckpointsRequested.emit(self.vm.output_path, captions, str(self.vm.value("trigger") or ""))

    def _validation(self, base: object, adapter: object) -> None:
        # "Held-out" only when images were really kept out of training (validation_images > 0).
        what = "Held-out loss" if self.vm.summary.validation_held_out else "Loss on training images"
        if isinstance(base, float) and isinstance(adapter, float) and base > 0:
            change = (adapter - base) / base * 100
            verdict = "it learned the style" if change < -2 else "little change: try more steps or a higher rate"
            self.validation_label.setText(
                f"{what}: base {base:.4f} → adapter {adapter:.4f} ({change:+.1f} %): {verdict}"
            )
        else:
            self.validation_label.setText(f"{what}: base {base} · adapter {adapter}")

    def _refresh_buttons(self) -> None:
        running = self.vm.state == TrainState.RUNNING
        ok, why = self.vm.can_start()
        self.start_button.setEnabled(ok)
        self.start_button.setToolTip(why or "Train the adapter in the background (Ctrl+Return)")
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(self.vm.can_resume())
        self.form.setEnabled(self.vm.state == TrainState.IDLE)
        self.preset_combo.setEnabled(self.vm.state == TrainState.IDLE)

    def _run_ended(self, cancelled: bool) -> None:
        self.rate_label.setText("Stopped" if cancelled else "")  # no stale "about 3 min left"
        self._refresh_buttons()

    def _state_changed(self, state: str) -> None:
        if state == TrainState.RUNNING:  # a new (or resumed) run: fresh curve, samples and verdict
            self.progress.setValue(0)
            self.rate_label.setText("")
            self.ensure_plot().clear_points()
            self.samples.clear()
            self.samples.can_choose = False
            self.validation_label.setText("")
        self._refresh_buttons()
        self._update_title()
