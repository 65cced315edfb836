"""Runs training in a child process and turns its JSON-event lines into Qt signals.

The child is the CLI (``python -m app.cli train … --json-events``), so an out-of-memory kill or a crash
in native code ends the child, never the app. Every stdout line is one event
(``app.engine.events.train_event_from_json``); anything else on stdout becomes a Log event, and stderr is kept
(the tail) as the "details" of an error.

Cancel: the child handles SIGTERM by setting its cancel token, finishing the current step and saving a
checkpoint and the adapter so far. Only a child that ignores the request is killed: its allowance is the
longest it has ever gone quiet during this run (a step, a sample round, a save) several times over, and at
least ``kill_after_ms``; a sign of saving (a checkpoint or log line) restarts the allowance. A killed
child's synthesised TrainFinished says so (``summary.killed_after_s``).
"""

from __future__ import annotations

import json
import os
import time

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app.engine.facade import (
    REPO_ROOT,
    Error,
    Event,
    Log,
    Phase,
    Progress,
    TrainFinished,
    TrainSummary,
    train_event_from_json,
)

STDERR_TAIL_CHARS = 8000
QUIET_ALLOWANCE = 4  # a cancelled child may take this many times its longest silence so far to save and exit


class TrainRunner(QObject):
    event = Signal(object)  # every Event, in order, on the UI thread
    started = Signal()
    finished = Signal(object)  # the TrainFinished event (synthesised when the child died without one)
    failed = Signal(str, str)  # one-line message, details

    def __init__(self, parent: QObject | None = None, *, kill_after_ms: int = 120_000) -> None:
        super().__init__(parent)
        self.kill_after_ms = kill_after_ms  # the least a cancelled child is given before it may be killed
        self._process: QProcess | None = None
        self._buffer = b""
        self._stderr = ""
        self._finished_event: TrainFinished | None = None
        self._error_event: Error | None = None
        self._cancel_requested = False
        self._last_event_at = 0.0
        self._longest_quiet_s = 0.0
        self._deadline = 0.0
        self._killed_after_s: float | None = None
        self._cancel_at = 0.0
        self._watchdog = QTimer(self)
        self._watchdog.setInterval(200)
        self._watchdog.timeout.connect(self._check_cancel_deadline)

    # ------------------------------------------------------------------ control
    def is_running(self) -> bool:
        return self._process is not None and self._process.state() != QProcess.ProcessState.NotRunning

    def start(self, argv: list[str], *, cwd: str | None = None) -> None:
        if self.is_running():
            raise RuntimeError("a training run is already in progress")
        self._buffer, self._stderr = b"", ""
        self._finished_event, self._error_event, self._cancel_requested = None, None, False
        self._last_event_at, self._longest_quiet_s, self._killed_after_s = time.monotonic(), 0.0, None
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
        """Ask the child to stop after the current step and save a checkpoint and the adapter so far."""
        if not self.is_running() or self._process is None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._cancel_at = time.monotonic()
        self._deadline = self._cancel_at + self.allowance_s()
        self._process.terminate()  # SIGTERM on POSIX: the child saves and exits
        self._watchdog.start()

    def allowance_s(self) -> float:
        """How long a cancelled child may stay busy before it counts as ignoring the request."""
        return max(self.kill_after_ms / 1000, QUIET_ALLOWANCE * self._longest_quiet_s)

    def wait(self, msecs: int = 30_000) -> bool:
        return self._process.waitForFinished(msecs) if self._process is not None else True

    def stderr_tail(self) -> str:
        return self._stderr

    # ------------------------------------------------------------------ plumbing
    def _check_cancel_deadline(self) -> None:
        if not self.is_running():
            self._watchdog.stop()
        elif time.monotonic() > self._deadline:
            self._watchdog.stop()
            self._killed_after_s = time.monotonic() - self._cancel_at
            self._process.kill()

    def _note_event(self, ev: Event) -> None:
        now = time.monotonic()
        if not self._cancel_requested:
            self._longest_quiet_s = max(self._longest_quiet_s, now - self._last_event_at)
        elif not (isinstance(ev, Progress) and ev.phase == Phase.TRAIN):
            # Saving or reporting, not training on: give it a fresh allowance from here.
            self._deadline = max(self._deadline, now + self.allowance_s())
        self._last_event_at = now

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
            ev: Event = train_event_from_json(line)
        except (ValueError, TypeError, json.JSONDecodeError):
            ev = Log(message=line)
        self._note_event(ev)
        if isinstance(ev, TrainFinished):
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
            self.failed.emit(
                "Could not start the training process.", self._process.errorString() if self._process else ""
            )

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if self._buffer.strip():
            self._emit_line(self._buffer.decode("utf-8", errors="replace").strip())
            self._buffer = b""
        self._read_stderr()
        if self._finished_event is not None:
            self.finished.emit(self._finished_event)
        elif self._cancel_requested:
            killed = round(self._killed_after_s, 1) if self._killed_after_s is not None else None
            ev = TrainFinished(cancelled=True, summary=TrainSummary(cancelled=True, killed_after_s=killed))
            self.event.emit(ev)
            self.finished.emit(ev)
        else:
            self.failed.emit(self._failure_message(exit_code, exit_status), self._stderr)
        self._watchdog.stop()
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
