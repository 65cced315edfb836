"""Checks on what the CLI prints."""

from __future__ import annotations


def one_error_line(err: str) -> str:
    """The one line a refused command prints on stderr (a traceback or a second line fails the test)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("styleshelf: error: ")
    return lines[0]
