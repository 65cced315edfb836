"""The PySide6 desktop app. Never imports torch/diffusers at module load: the engine loads in the background."""

from app.gui.qtcompat import immortalize_bools

immortalize_bools()  # before any signal is emitted: see app/gui/qtcompat.py
