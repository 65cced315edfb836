"""StyleShelf: train LoRA style adapters and generate images with a shelf of stacked adapters."""

__version__ = "0.1.0"
