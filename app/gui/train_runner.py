"""Runs training in a child process and turns its JSON-event lines into Qt signals.

The child is the CLI (``python -m app.cli train … --json-events``), so an out-of-memory kill or a crash
in native code ends the child, never the app. Every stdout line is one event
(``app.engine.events.event_from_json``); anything else on stdout becomes a Log event, and stderr is kept
(the tail) as the "details" of an error.

Cancel: the child handles SIGTERM by setting its cancel token, finishing the current step and saving a
checkpoint; if it has not exited after ``kill_after_ms`` it is killed.
"""

from __future__ import annotations

import json
import os

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app.engine.facade import REPO_ROOT, Error, Event, Finished, Log, event_from_json

STDERR_TAIL_CHARS = 8000


class TrainRunner(QObject):
    event = Signal(object)  # every Event, in order, on the UI thread
    started = Signal()
    finished = Signal(object)  # the Finished event (synthesised when the child died without one)
    failed = Signal(str, str)  # one-line message, details

    def __init__(self, parent: QObject | None = None, *, kill_after_ms: int = 30_000) -> None:
        super().__init__(parent)
        self.kill_after_ms = kill_after_ms
        self._process: QProcess | None = None
        self._buffer = b""
        self._stderr = ""
        self._finished_event: Finished | None = None
        self._error_event: Error | None = None
        self._cancel_requested = False

    # ------------------------------------------------------------------ control
    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def start(self, argv: list[str], *, cwd: str | None = None) -> None:
        if self.is_running():
            raise RuntimeError("a training run is already in progress")
        self._buffer, self._stderr = b"", ""
        self._finished_event, self._error_event, self._cancel_requested = None, None, False
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")  # events must arrive as they happen, not when a buffer fills
        env.insert("HF_HUB_OFFLINE", "1")
        proc.setProcessEnvironment(env)
        if cwd:
            proc.setWorkingDirectory(cwd)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        self._process = proc
        proc.start(argv[0], argv[1:])
        self.started.emit()

    def cancel(self) -> None:
        """Ask the child to stop after the current step and save a checkpoint."""
        if not self.is_running() or self._process is None:
            return
        self._cancel_requested = True
        proc = self._process
        proc.terminate()  # SIGTERM on POSIX: the child saves and exits
        # Only this process: a Resume started meanwhile runs in a new QProcess that must live on.
        QTimer.singleShot(self.kill_after_ms, lambda: self._kill_if_still_running(proc))

    def wait(self, msecs: int = 30_000) -> bool:
        return self._process.waitForFinished(msecs) if self._process is not None else True

    def stderr_tail(self) -> str:
        return self._stderr

    # ------------------------------------------------------------------ plumbing
    def _kill_if_still_running(self, proc: QProcess) -> None:
        if proc is self._process and self.is_running():
            proc.kill()

    def _read_stdout(self) -> None:
        assert self._process is not None
        self._buffer += bytes(self._process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self._emit_line(raw.decode("utf-8", errors="replace").strip())

    def _emit_line(self, line: str) -> None:
        if not line:
            return
        try:
            ev: Event = event_from_json(line)
        except (ValueError, TypeError, json.JSONDecodeError):
            ev = Log(message=line)
        if isinstance(ev, Finished):
            self._finished_event = ev
        elif isinstance(ev, Error):
            self._error_event = ev
        self.event.emit(ev)

    def _read_stderr(self) -> None:
        assert self._process is not None
        text = bytes(self._process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._stderr = (self._stderr + text)[-STDERR_TAIL_CHARS:]

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.failed.emit("Could not start the training process.", self._process.errorString() if self._process else "")

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._buffer.strip():
            self._emit_line(self._buffer.decode("utf-8", errors="replace").strip())
            self._buffer = b""
        self._read_stderr()
        if self._finished_event is not None:
            self.finished.emit(self._finished_event)
        elif self._cancel_requested:
            ev = Finished(cancelled=True)
            self.event.emit(ev)
            self.finished.emit(ev)
        else:
            self.failed.emit(self._failure_message(exit_code, exit_status), self._stderr)
        if self._process is not None:
            self._process.deleteLater()
            self._process = None

    def _failure_message(self, exit_code: int, exit_status: QProcess.ExitStatus) -> str:
        if self._error_event is not None and self._error_event.message:
            return self._error_event.message
        # The CLI prints "styleshelf: error: <reason>" for bad input: that line is the message.
        for line in reversed(self._stderr.strip().splitlines()):
            if line.startswith("styleshelf: error:"):
                return line.split(":", 2)[2].strip()
        if exit_status == QProcess.ExitStatus.CrashExit or exit_code < 0:
            return "Training stopped unexpectedly (the process crashed or ran out of memory)."
        if "out of memory" in self._stderr.lower():
            return "Training ran out of memory: lower the batch size, resolution or rank."
        return f"Training stopped with exit code {exit_code}."


def child_cwd() -> str:
    """Run the child from the repo root so ``python -m app.cli`` resolves even without an install."""
    return os.fspath(REPO_ROOT)
