"""Where things live: bundled assets and styles in the repo, user data and cache under platformdirs.

``STYLESHELF_HOME`` overrides the user folders (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = REPO_ROOT / "assets"
TOKENIZER_DIR = ASSETS_DIR / "clip-tokenizer"
MODEL_CONFIGS_DIR = ASSETS_DIR / "model-configs"
DEMO_MODEL_DIR = ASSETS_DIR / "demo-model"
BUNDLED_STYLES_DIR = REPO_ROOT / "styles"


def _home() -> Path | None:
    value = os.environ.get("STYLESHELF_HOME")
    return Path(value) if value else None


def user_data_dir() -> Path:
    """The user's own adapters, presets and generated images."""
    home = _home()
    if home is not None:
        return home / "data"
    from platformdirs import user_data_path

    return user_data_path("StyleShelf", appauthor=False)


def user_config_dir() -> Path:
    """Small user preferences the engine reads too (the author name written into new adapters)."""
    home = _home()
    if home is not None:
        return home / "config"
    from platformdirs import user_config_path

    return user_config_path("StyleShelf", appauthor=False)


def user_cache_dir() -> Path:
    """Latent / text-embedding caches and hash caches: safe to delete."""
    home = _home()
    if home is not None:
        return home / "cache"
    from platformdirs import user_cache_path

    return user_cache_path("StyleShelf", appauthor=False)
