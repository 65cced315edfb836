"""How far a bundled style adapter moves demo-model pictures toward its style set, at several weights, and
whether the issue's yellow star keeps its colours: shared by bench/style_strength.py and the demo-asset tests."""

from __future__ import annotations

import random
import statistics
from pathlib import Path


def style_prompts(style_set, count: int, seed: int = 7) -> list[str]:
    from app.engine.train.dataset import with_trigger
    from tools.demo.scenes import random_scene

    rng = random.Random(seed)
    return [
        with_trigger(random_scene(rng, colours=style_set.colours, jitter=0.0).caption(), style_set.trigger)
        for _ in range(count)
    ]


WEIGHTS = (0.5, 1.0)


def measure_style(pipe, style_set, prompts: list[str], seeds: list[int], root=None, weights=WEIGHTS, **draw_kw) -> dict:
    """Draw at weight 0 and at each of ``weights`` and score every picture; the adapter is unloaded afterwards.

    Per weight: the median score, how far it moved from weight 0 toward the style set's median ("toward",
    1.0 = all the way) and in how many prompt/seed pairs it scored higher than weight 0.
    """
    from PIL import Image

    from app.engine.adapters import load_into_pipeline, unload_adapter
    from app.engine.paths import BUNDLED_STYLES_DIR
    from tools.demo.harness import draw
    from tools.demo.stats import style_score

    before = draw(pipe, prompts, seeds, **draw_kw)
    root = root or BUNDLED_STYLES_DIR
    report = load_into_pipeline(pipe, style_set.adapter_path(root), style_set.folder)
    drawn = {}
    try:
        for w in weights:
            pipe.set_adapters([style_set.folder], [w])
            drawn[w] = draw(pipe, prompts, seeds, **draw_kw)
    finally:
        unload_adapter(pipe, style_set.folder)
    target = [style_score(style_set.style, Image.open(p)) for p in sorted(style_set.folder_path(root).glob("*.png"))]
    s0 = [style_score(style_set.style, im) for im in before]
    m0, mt = statistics.median(s0), statistics.median(target)
    result = dict(w0=m0, target=mt, n=len(s0), matched=report.matched, unmatched=report.unmatched, before=before)
    for w, images in drawn.items():
        sw = [style_score(style_set.style, im) for im in images]
        mw = statistics.median(sw)
        result[w] = dict(
            median=mw,
            toward=(mw - m0) / (mt - m0) if mt != m0 else float("nan"),
            up=sum(b > a for a, b in zip(s0, sw)),
            images=images,
        )
    return result


STAR = "a yellow star on a green background"


def yellow_star_check(pipe, style_set, adapter: Path, seeds: list[int], weights=WEIGHTS, **draw_kw) -> dict:
    """The issue's eyeball test in numbers: the plain prompt without the adapter, and the prompt with the trigger
    at each of ``weights``; in how many pictures a green background and a yellow shape are still there (named by
    hue, which stripes and pastel keep), and the style's median score."""
    from app.engine.adapters import load_into_pipeline, unload_adapter
    from app.engine.train.dataset import with_trigger
    from tools.demo.harness import draw
    from tools.demo.stats import hue_layout, style_score

    layout = lambda images: sum(hue_layout(im) == ("green", "yellow") for im in images)  # noqa: E731
    score = lambda images: statistics.median(style_score(style_set.style, im) for im in images)  # noqa: E731
    before = draw(pipe, [STAR], seeds, **draw_kw)
    result = dict(n=len(seeds), w0_layout=layout(before), w0=score(before), before=before)
    load_into_pipeline(pipe, adapter, style_set.folder)
    try:
        for w in weights:
            pipe.set_adapters([style_set.folder], [w])
            images = draw(pipe, [with_trigger(STAR, style_set.trigger)], seeds, **draw_kw)
            result[w] = dict(layout=layout(images), score=score(images), images=images)
    finally:
        unload_adapter(pipe, style_set.folder)
    return result
