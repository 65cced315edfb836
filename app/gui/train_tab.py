"""The Train tab: drop a folder of style images, tune a few settings, watch it learn.

Pure view: all state lives in ``TrainViewModel``; this widget lays it out and forwards clicks and drops.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPixmap
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

from app.gui.dataset_view import DatasetGrid
from app.gui.settings_form import SettingsForm
from app.gui.train_vm import IDLE, RUNNING, TrainViewModel

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainTab(QWidget):
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
        head = QHBoxLayout()
        head.addWidget(self.folder_label, 1)
        head.addWidget(self.pick_button)
        self.grid = DatasetGrid()
        self.grid.setModel(vm.dataset)
        self.drop_hint = QLabel("Drop a folder (or images) here\n\nCaptions come from .txt files beside the images\n"
                                "and can be edited by double-clicking them.")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setObjectName("Muted")
        hint_frame = QFrame()
        hint_frame.setObjectName("DropHint")
        QVBoxLayout(hint_frame).addWidget(self.drop_hint)
        self.hint_frame = hint_frame
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addLayout(head)
        left_layout.addWidget(self.counts_label)
        left_layout.addWidget(hint_frame, 1)
        left_layout.addWidget(self.grid, 1)

        # ---- right: settings and the run
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Custom", "")
        for name in vm.presets:
            self.preset_combo.addItem(name.capitalize(), name)
        self.preset_combo.setToolTip("Fast style: a quick first look. Quality style: longer, bigger, smoother. "
                                     "Demo model: what trained the bundled styles on the demo model.")
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
        form_layout.addLayout(preset_row)
        form_layout.addWidget(self.form)
        form_layout.addStretch(1)
        form_scroll.setWidget(form_holder)

        self.start_button = QPushButton("Train")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip("Train the adapter in the background (Ctrl+Return)")
        self.start_button.clicked.connect(lambda: vm.start())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after this step and save a checkpoint you can resume")
        self.cancel_button.clicked.connect(vm.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the cancelled run from its checkpoint")
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
        buttons.addWidget(self.compare_button)

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
        self.validation_label.setMinimumHeight(36)
        self.samples_row = QHBoxLayout()
        self.samples_row.addStretch(1)
        samples_box = QWidget()
        samples_box.setLayout(self.samples_row)
        samples_scroll = QScrollArea()  # samples pile up over a long run: scroll sideways, never squash
        samples_scroll.setWidget(samples_box)
        samples_scroll.setWidgetResizable(True)
        samples_scroll.setFixedHeight(124)
        samples_scroll.setFrameShape(QFrame.Shape.NoFrame)
        samples_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        run_panel = QWidget()
        run_layout = QVBoxLayout(run_panel)
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.progress)
        run_layout.addWidget(self.rate_label)
        run_layout.addLayout(self.plot_holder, 1)
        run_layout.addWidget(self.validation_label)
        samples_title = QLabel("Samples")
        samples_title.setObjectName("Muted")
        run_layout.addWidget(samples_title)
        run_layout.addWidget(samples_scroll)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(form_scroll)
        right.addWidget(run_panel)
        right.setStretchFactor(0, 0)
        right.setStretchFactor(1, 1)
        right.setSizes([300, 500])  # the basic form fits; the run panel gets the room for the curve
        right.setMinimumWidth(380)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        vm.valueChanged.connect(self._value_changed)
        vm.stateChanged.connect(self._state_changed)
        vm.datasetLoaded.connect(self._dataset_loaded)
        vm.progressChanged.connect(self._progress)
        vm.lossPoint.connect(self._loss_point)
        vm.samplesReady.connect(self._samples)
        vm.validationReady.connect(self._validation)
        vm.runEnded.connect(lambda _c: self._refresh_buttons())
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

    def _value_changed(self, name: str) -> None:
        self.form.refresh(name or None)
        # Editing a value the preset set means the settings are now the user's own: show "Custom".
        current = self.preset_combo.currentData()
        if current and any(self.vm.value(k) != v for k, v in self.vm.presets.get(current, {}).items()):
            self.preset_combo.setCurrentIndex(0)

    def _dataset_loaded(self, usable: int, skipped: int) -> None:
        has = bool(self.vm.dataset.folder)
        self.hint_frame.setVisible(not has)
        self.grid.setVisible(has)
        if has:
            self.folder_label.setText(Path(self.vm.dataset.folder).name)
            self.counts_label.setText(f"{usable} usable · {skipped} skipped" + ("  (hover a red badge for why)" if skipped else ""))
        self._refresh_buttons()

    def _progress(self, step: int, total: int, it_s: object, eta: object) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(step)
        rate = f"{it_s:.2f} it/s" if isinstance(it_s, (int, float)) else "– it/s"
        self.rate_label.setText(f"{rate} · ETA {format_eta(eta if isinstance(eta, (int, float)) else None)}")

    def _samples(self, step: int, paths: list) -> None:
        for p in paths:
            label = QLabel()
            pix = QPixmap(p)
            if not pix.isNull():
                label.setPixmap(pix.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
            label.setToolTip(f"Step {step}: {Path(p).name}")
            self.samples_row.insertWidget(self.samples_row.count() - 1, label)

    def _compare_checkpoints(self) -> None:
        captions = [e.caption for e in self.vm.dataset.entries() if not e.skipped_reason]
        self.compareCheckpointsRequested.emit(self.vm.output_path, captions, str(self.vm.value("trigger") or ""))

    def _validation(self, base: object, adapter: object) -> None:
        if isinstance(base, float) and isinstance(adapter, float) and base > 0:
            change = (adapter - base) / base * 100
            verdict = "it learned the style" if change < -2 else "little change: try more steps or a higher rate"
            self.validation_label.setText(
                f"Held-out loss: base {base:.4f} → adapter {adapter:.4f} ({change:+.1f} %): {verdict}"
            )
        else:
            self.validation_label.setText(f"Held-out loss: base {base} · adapter {adapter}")

    def _refresh_buttons(self) -> None:
        running = self.vm.state == RUNNING
        ok, why = self.vm.can_start()
        self.start_button.setEnabled(ok)
        self.start_button.setToolTip(why or "Train the adapter in the background (Ctrl+Return)")
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(self.vm.can_resume())
        self.form.setEnabled(self.vm.state == IDLE)
        self.preset_combo.setEnabled(self.vm.state == IDLE)

    def _state_changed(self, state: str) -> None:
        if state == RUNNING:  # a new (or resumed) run: fresh curve, samples and verdict
            self.progress.setValue(0)
            self.rate_label.setText("")
            self.ensure_plot().clear_points()
            while self.samples_row.count() > 1:
                item = self.samples_row.takeAt(0)
                if item.widget():
                    item.widget().deleteLater()
            self.validation_label.setText("")
        self._refresh_buttons()
