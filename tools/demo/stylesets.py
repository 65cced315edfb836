"""The three bundled example style sets (styles/<folder>): what each draws, its trigger word, its statistic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.engine.paths import BUNDLED_STYLES_DIR
from tools.demo.scenes import COLOURS


@dataclass(frozen=True)
class StyleSet:
    folder: str
    style: str  # one of tools.demo.scenes.STYLES, also the key of stats.style_score
    trigger: str
    title: str
    look: str
    colours: tuple[str, ...]  # colours the set draws (a style must stay visible on its scenes)
    seed: int
    measure: str  # what bench/style_strength.py reports for it
    # Share of training captions dropped (kohya's caption_dropout_rate). Stripes are the same whatever the scene,
    # so they are learnt for the empty caption too and survive guidance's unconditional half (at 0 a CFG-7 picture
    # kept ~6 % of them; with partial-strength training 0.3 gave weight 0.5 37 % of the way, 0.5 only 26 %);
    # colour styles keep a little dropout so the scene's colours still come from the prompt.
    caption_dropout: float = 0.1
    # Share of partial-strength steps (TrainConfig.partial_strength): weight 0.5 then shows about half the look.
    # Outlines use fewer: at 0.8 their weight-1 outline swallowed the star's thin points (yellow read orange, 0/4),
    # at 0.5 it keeps the star yellow (4/4) and weight 0.5 still goes 35 % of the way.
    partial_strength: float = 0.8

    def folder_path(self, root: str | Path = BUNDLED_STYLES_DIR) -> Path:
        return Path(root) / self.folder

    def adapter_path(self, root: str | Path = BUNDLED_STYLES_DIR) -> Path:
        return self.folder_path(root) / f"{self.folder}.safetensors"


STYLE_SETS: tuple[StyleSet, ...] = (
    StyleSet(
        "diagonal-stripes",
        "stripes",
        "striped",
        "Diagonal stripes",
        "light diagonal stripes (45°, 16 px period at 64 px) over the shape and the background alike",
        tuple(c for c in COLOURS if c != "white"),
        101,
        "share of spectral energy at the 45° stripe frequency",
        caption_dropout=0.3,
    ),
    StyleSet(
        "pastel",
        "pastel",
        "pastel",
        "Pastel palette",
        "every colour mixed 55 % toward white: light, soft, low saturation",
        tuple(COLOURS),
        202,
        "mean lightness minus mean saturation",
    ),
    StyleSet(
        "ink-outlines",
        "outline",
        "outlined",
        "Thick dark outlines",
        "a thick near-black outline (3.5 px at 64 px) around the shape",
        tuple(c for c in COLOURS if c != "black"),
        303,
        "share of dark (luma < 70) pixels, on scenes without black",
        partial_strength=0.5,
    ),
)
