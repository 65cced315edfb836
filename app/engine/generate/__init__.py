"""Generation: a long-lived base pipeline with a stack of weighted adapters, PNGs with parameters.

Importing this package is light (no torch); the heavy imports happen when a Generator is built.
"""

from app.engine.generate.config import GenerateConfig, GeneratedImage
from app.engine.generate.generator import Generator, insert_trigger_phrases
from app.engine.generate.pngmeta import LoraRef, parse_a1111, read_png_parameters, read_png_text
from app.engine.generate.samplers import SAMPLER_NAMES, SAMPLERS

__all__ = [
    "GenerateConfig",
    "GeneratedImage",
    "Generator",
    "LoraRef",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "insert_trigger_phrases",
    "parse_a1111",
    "read_png_parameters",
    "read_png_text",
]
