"""Base-model side of the safetensors reader: refuse pickles with advice, read headers leniently.

The container parsing lives in ``app.engine.safetensors_file`` (shared with adapters). Here a file cut
short after its header still yields the header, so its family can be detected in milliseconds;
``require_complete`` then refuses it before any load.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.engine.errors import ModelLoadError
from app.engine.safetensors_file import PICKLE_SUFFIXES, Header, TensorSpec, is_pickle_path, read_header

# Older names kept for the model modules.
SafetensorsHeader = Header
TensorInfo = TensorSpec

__all__ = ["PICKLE_SUFFIXES", "SafetensorsHeader", "read_safetensors_header", "refuse_pickle", "require_complete"]


def refuse_pickle(path: Path) -> None:
    """Raise for a pickle-format checkpoint: we never unpickle a file a user was sent."""
    if is_pickle_path(path):
        raise ModelLoadError(
            f"{path.name} is a pickle-format checkpoint ({path.suffix}); StyleShelf never opens pickles "
            "because they can run code.",
            hint="Convert it to .safetensors with a tool you trust, or download the .safetensors release.",
        )


def read_safetensors_header(path: str | os.PathLike[str]) -> Header:
    """Parse the header of ``path``; a missing, empty or corrupt file raises ModelLoadError."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist.")
    refuse_pickle(path)
    return read_header(path, error=ModelLoadError, strict=False)


def require_complete(header: Header) -> None:
    """Raise when the file is shorter than its header says (an interrupted download or copy)."""
    if not header.is_complete:
        have = header.file_size - header.data_offset
        raise ModelLoadError(
            f"{header.path.name} is truncated: it holds {max(have, 0):,} of {header.data_size:,} bytes of "
            "tensor data.",
            hint="Download or copy it again.",
        )
