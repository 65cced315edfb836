"""One consistent way for errors to reach the user.

``ErrorBanner`` is a non-modal strip at the top of the window: the one-line reason, a "Details" toggle
showing the rest (traceback, stderr of a crashed child), and a close button. ``install_excepthook``
turns an uncaught exception into a dialog instead of a dead app; the work in progress stays open.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(one-line message, details) for any exception; UserErrors carry their own wording."""
    from app.engine.facade import UserError

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, UserError):
        # The message says what to do; technical figures (sizes, offsets, stderr) wait under "Details".
        return str(exc), (f"{exc.details}\n\n{trace}" if exc.details else trace)
    return (
        f"Something went wrong that StyleShelf did not expect ({type(exc).__name__}). Try again; if it "
        "happens again, copy the Details into a bug report."
    ), f"{type(exc).__name__}: {exc}\n\n{trace}"


class ErrorBanner(QFrame):
    """Shows the latest error; hidden until ``show_error`` is called."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ErrorBanner")
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._toggle_details)
        close = QToolButton()
        close.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        self.details_view = QPlainTextEdit()
        self.details_view.setReadOnly(True)
        self.details_view.setMaximumHeight(160)
        self.details_view.hide()
        row = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(18, 18))
        row.addWidget(icon)
        row.addWidget(self.message_label, 1)
        row.addWidget(self.details_button)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(row)
        layout.addWidget(self.details_view)
        self.hide()

    def show_error(self, message: str, details: str = "") -> None:
        self.message_label.setText(message)
        self.details_view.setPlainText(details)
        self.details_button.setVisible(bool(details))
        self.details_button.setChecked(False)
        self.show()

    def message(self) -> str:
        return self.message_label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

    def _toggle_details(self, on: bool) -> None:
        self.details_view.setVisible(on)


class ExceptionDialogHook:
    """``sys.excepthook`` replacement: log to stderr, show a dialog, keep the app alive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent
        self.previous = sys.excepthook
        self.last_message = ""
        self._open: list[QMessageBox] = []  # a parentless dialog needs a Python reference to stay alive

    def __call__(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self.previous(exc_type, exc, tb)
            return
        exc.__traceback__ = tb
        message, details = describe_exception(exc)
        self.last_message = message
        sys.stderr.write(details)
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("StyleShelf hit a problem")
        box.setText(message)
        box.setInformativeText("Your work is still open. Saving it now is a good idea.")
        box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.finished.connect(lambda _r, b=box: self._open.remove(b) if b in self._open else None)
        self._open.append(box)
        box.show()


def install_excepthook(parent: QWidget | None = None) -> ExceptionDialogHook:
    hook = ExceptionDialogHook(parent)
    sys.excepthook = hook
    return hook
