"""The main window: base-model bar, error banner, Train and Generate tabs, menus, shortcuts, status line.

It wires the view models together (a finished training run puts its adapter on the shelf; the base
model choice reaches training, generation and the shelf's family check) and is the one place errors
from anywhere are shown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.engine import facade
from app.gui import settings as prefs
from app.gui.errors import ErrorBanner
from app.gui.generate_tab import GenerateTab
from app.gui.generate_vm import GenerateState, GenerateViewModel
from app.gui.shelf_vm import ShelfViewModel
from app.gui.team_menu import add_team_actions
from app.gui.theme import apply_theme
from app.gui.train_tab import TrainTab
from app.gui.train_vm import TrainState, TrainViewModel

BASE_KEY = "base_model"
THEME_KEY = "theme"


class MainWindow(QMainWindow):
    def __init__(self, *, load_engine: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("StyleShelf")
        self.base_info: facade.BaseModelInfo | None = None

        self.shelf_vm = ShelfViewModel(self)
        self.train_vm = TrainViewModel(self)
        self.generate_vm = GenerateViewModel(self.shelf_vm.model, self)

        self.banner = ErrorBanner()
        self.base_label = QLabel()
        self.base_label.setObjectName("Heading")
        self.family_badge = QLabel()
        self.family_badge.setObjectName("Badge")
        self.base_status = QLabel()
        self.base_status.setObjectName("Muted")
        self.base_icon = QLabel()  # a theme icon, not an emoji: "⏳" drew as a box with common fonts
        self.base_icon.setFixedSize(16, 16)
        self.base_icon.hide()
        change = QPushButton("Base model…")
        change.setToolTip("Pick a diffusers model folder or a .safetensors checkpoint (Ctrl+O)")
        change.clicked.connect(self.choose_base_folder)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Base model:"))
        bar.addWidget(self.base_label)
        bar.addWidget(self.family_badge)
        bar.addWidget(self.base_icon)
        bar.addWidget(self.base_status, 1)
        bar.addWidget(change)

        self.tabs = QTabWidget()
        self.train_tab = TrainTab(self.train_vm)
        self.generate_tab = GenerateTab(self.generate_vm, self.shelf_vm)
        self.tabs.addTab(self.train_tab, "Train")
        self.train_tab.titleChanged.connect(lambda text: self.tabs.setTabText(self.tabs.indexOf(self.train_tab), text))
        self.tabs.addTab(self.generate_tab, "Generate")
        self.tabs.setDocumentMode(True)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 0)
        layout.addLayout(bar)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_line = QLabel()
        self.statusBar().addWidget(self.status_line, 1)

        # Status messages belong to a tab: "Done in 22.3 s" from generating must not sit under the Train tab.
        self.tab_status: dict[QWidget, str] = {self.train_tab: "", self.generate_tab: ""}
        for vm, tab in (
            (self.shelf_vm, self.generate_tab),
            (self.train_vm, self.train_tab),
            (self.generate_vm, self.generate_tab),
        ):
            vm.errorRaised.connect(self.show_error)
            vm.message.connect(lambda text, t=tab: self.show_status(text, t))
        self.tabs.currentChanged.connect(
            lambda _i: self.status_line.setText(self.tab_status.get(self.tabs.currentWidget(), ""))
        )
        self.train_vm.adapterReady.connect(lambda path: self.shelf_vm.add_adapter(path, enabled=False))
        self.train_tab.compareCheckpointsRequested.connect(self._compare_checkpoints)
        self.generate_vm.stateChanged.connect(self._generate_state)
        self._build_menus()
        self.resize(1280, 800)

        self._set_base(prefs.get_str(BASE_KEY) or facade.default_base_model(), load=False, remember=False)
        self.train_vm.restore_session()  # the Train form, folder and an unfinished run, as they were left
        if load_engine:
            # Start the engine only once the window is on screen: importing diffusers on the worker
            # thread competes for the GIL and would delay the first paint.
            QTimer.singleShot(150, self._start_engine)

    def _compare_checkpoints(self, adapter: str, captions: list, trigger: str) -> None:
        from app.gui.compare_dialog import open_checkpoint_comparison

        self.tabs.setCurrentWidget(self.generate_tab)
        open_checkpoint_comparison(self.generate_tab, adapter, captions, trigger)

    def _start_engine(self) -> None:
        if self.base_info is not None and not self.generate_vm.base_path:
            self.generate_vm.load_base(self.base_info.path)
        self.shelf_vm.refresh()
        if self.generate_vm.load_previous_images():
            self.generate_tab.show_image(0)  # the newest picture, with what made it

    # ------------------------------------------------------------------ menus and shortcuts
    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        self._action(file, "Open base model folder…", self.choose_base_folder, QKeySequence.StandardKey.Open)
        self._action(file, "Open base checkpoint (.safetensors)…", self.choose_base_file, "Ctrl+Shift+O")
        file.addSeparator()
        self._action(file, "Open training images…", self.train_tab.choose_folder, "Ctrl+D")
        self._action(file, "Import styles…", self.generate_tab.shelf_panel._choose_import, "Ctrl+I")
        self._action(file, "Adapter folders…", self.choose_adapter_folders)
        add_team_actions(self, file, self.shelf_vm)  # your name, stack files
        file.addSeparator()
        self._action(file, "Quit", self.close, QKeySequence.StandardKey.Quit)

        run = self.menuBar().addMenu("&Run")
        self._action(run, "Train / Generate", self.run_current, "Ctrl+Return")
        self._action(run, "Cancel", self.cancel_current, "Ctrl+.")
        self._action(run, "New random seed", self.generate_vm.roll_seed, "Ctrl+R")

        view = self.menuBar().addMenu("&View")
        self._action(view, "Train tab", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self._action(view, "Generate tab", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2")
        self._action(view, "Find style", self._focus_search, QKeySequence.StandardKey.Find)
        theme_menu = view.addMenu("Theme")
        group = QActionGroup(self)
        current = prefs.get_str(THEME_KEY, "system")
        for mode, label in (("system", "Follow system"), ("dark", "Dark"), ("light", "Light")):
            act = theme_menu.addAction(label)
            act.setCheckable(True)
            act.setChecked(mode == current)
            act.triggered.connect(lambda _on=False, m=mode: self.set_theme(m))
            group.addAction(act)

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self._show_shortcuts, QKeySequence.StandardKey.HelpContents)
        self._action(help_menu, "About StyleShelf", self._about)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        act = menu.addAction(text)
        act.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        return act

    def run_current(self) -> None:
        if self.tabs.currentWidget() is self.train_tab:
            self.train_vm.start()
        else:
            self.generate_vm.generate()

    def cancel_current(self) -> None:
        if self.tabs.currentWidget() is self.train_tab:
            self.train_vm.cancel()
        else:
            self.generate_vm.cancel()

    def _focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.generate_tab)
        self.generate_tab.shelf_panel.search.setFocus()

    def set_theme(self, mode: str) -> None:
        prefs.set_value(THEME_KEY, mode)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, mode)

    def _show_shortcuts(self) -> None:
        from app.gui.dialogs import ShortcutsDialog

        rows = []
        for menu_action in self.menuBar().actions():
            for act in menu_action.menu().actions():
                if not act.shortcut().isEmpty():
                    keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                    rows.append((keys, act.text().replace("&", "")))
        self.shortcuts_dialog = ShortcutsDialog(rows, self)
        self.shortcuts_dialog.show()

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About StyleShelf",
            "StyleShelf: train small style adapters (LoRA) from a folder of pictures,\n"
            "then paint with a shelf of styles you can switch and mix.",
        )

    # ------------------------------------------------------------------ base model
    def choose_base_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Base model folder (diffusers)")
        if folder:
            self.set_base_model(folder)

    def choose_base_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.set_base_model(path)

    def choose_adapter_folders(self) -> None:
        from app.gui.dialogs import AdapterFoldersDialog

        dialog = AdapterFoldersDialog(self.shelf_vm.extra_folders, self)
        if dialog.exec():
            self.shelf_vm.set_extra_folders(dialog.folders())

    def set_base_model(self, path: str) -> None:
        self._set_base(path, load=True, remember=True)

    def set_base_model_without_loading(self, path: str) -> None:
        """Pick the base for training only (the child process loads it; nothing loads here)."""
        self._set_base(path, load=False, remember=False)

    def _set_base(self, path: str, *, load: bool, remember: bool) -> None:
        if not path:
            self.base_info = None
            self.base_label.setText("none")
            self.family_badge.hide()
            self.base_status.setText("Pick a base model to start: File → Open base model folder… (Ctrl+O)")
            return
        info = facade.inspect_base_model(path)
        if info.error:
            self.show_error(info.error, path)
            if self.base_info is None:
                self.base_label.setText("none")
                self.base_status.setText("Pick a base model to start (Ctrl+O)")
            return
        self.base_info = info
        if remember:
            prefs.set_value(BASE_KEY, path)
        self.base_label.setText(Path(path).name)
        self.base_label.setToolTip(path)
        self.family_badge.setText(info.label)
        self.family_badge.show()
        self.train_vm.base_model = path
        self.train_vm.set_native_resolution(info.resolution)
        if info.is_demo:
            self.train_vm.suggest_preset("demo model")
        self.train_tab._refresh_buttons()
        self.shelf_vm.model.set_base_family(info.family)
        if load:
            self.generate_vm.load_base(path)
        else:
            self.base_status.setText("")

    def _generate_state(self, state: str) -> None:
        if state == GenerateState.GENERATING:
            self.shelf_vm.save_session()  # the stack that made the picture survives even a crash
        icon = {
            GenerateState.LOADING: QStyle.StandardPixmap.SP_BrowserReload,
            GenerateState.READY: QStyle.StandardPixmap.SP_DialogApplyButton,
        }
        if state in icon:
            self.base_icon.setPixmap(self.style().standardIcon(icon[state]).pixmap(16, 16))
            self.base_icon.show()
            self.base_status.setText("loading in the background…" if state == GenerateState.LOADING else "ready")

    # ------------------------------------------------------------------ messages
    def show_error(self, message: str, details: str = "") -> None:
        self.banner.show_error(message, details)

    def show_status(self, text: str, tab: QWidget | None = None) -> None:
        """Remember ``text`` as ``tab``'s status (the current tab's when None); show it if that tab is open."""
        tab = tab or self.tabs.currentWidget()
        self.tab_status[tab] = text
        if tab is self.tabs.currentWidget():
            self.status_line.setText(text)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.train_vm.state == TrainState.RUNNING:
            answer = QMessageBox.question(
                self,
                "Training is running",
                "Stop training and quit? A checkpoint is saved so you can resume later.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.train_vm.cancel()
            self.train_vm.runner.wait(60_000)
        self.generate_vm.save_session()
        self.shelf_vm.save_session()
        self.generate_vm.shutdown()
        event.accept()
