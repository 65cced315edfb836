"""Errors that carry a message a user can act on.

Engine code raises ``UserError`` (or a subclass) for anything caused by input: a missing file, a
corrupt adapter, an unsupported model. The CLI prints ``str(err)`` as one line and exits non-zero; the
GUI shows the message with ``details`` behind an expander. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, explained in one line, with an optional hint and details."""

    def __init__(self, message: str, *, hint: str = "", details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class ModelLoadError(UserError):
    """A base model could not be loaded (missing, truncated, pickled or not a model)."""


class AdapterError(UserError):
    """An adapter file was refused (wrong layout, corrupt, incompatible)."""


class DatasetError(UserError):
    """A training dataset cannot be used (no usable image, unreadable folder)."""


class Cancelled(Exception):
    """Raised inside long work when the user cancelled; callers turn it into a 'cancelled' result."""
