"""The PySide6 desktop app. Never imports torch/diffusers at module load: the engine loads in the background."""
