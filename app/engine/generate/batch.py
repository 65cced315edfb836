"""Batch restyle: every picture of a folder through image to image with the same stack, strength and seed.

Artists restyle a whole set (animation frames, icons), so every output is named after its input
(``frame-012.png`` → ``OUT/frame-012.png``) and all use one seed, which keeps the look consistent across
the set. A picture that cannot be read is skipped and named; cancel stops after the current step and
keeps what was finished.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

from app.engine.errors import UserError
from app.engine.events import (
    NEVER_CANCEL,
    CancelToken,
    EventCallback,
    Finished,
    ImageReady,
    Log,
    Progress,
    ignore_event,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def folder_pictures(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"Input folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder.name}/ holds no pictures ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def restyle_folder(
    generator: Any,
    config: Any,
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    mask_dir: str | Path | None = None,
    on_event: EventCallback = ignore_event,
    cancel: CancelToken = NEVER_CANCEL,
) -> list[Any]:
    """Restyle every picture of ``in_dir`` into ``out_dir``; ``mask_dir`` may hold masks with the same names."""
    files = folder_pictures(in_dir)
    out = Path(out_dir)
    if out.resolve() == Path(in_dir).resolve():
        raise UserError("The output folder must differ from the input folder (outputs are named like the inputs).")
    seed = config.seed if config.seed is not None else secrets.randbelow(2**32)
    started = time.perf_counter()
    results: list[Any] = []
    skipped: list[str] = []
    cancelled = False
    for index, picture in enumerate(files):
        if cancel.is_set():
            cancelled = True
            break
        on_event(Log(message=f"{index + 1}/{len(files)}: {picture.name}"))
        one = dataclasses.replace(
            config, init_image=str(picture), mask_image=_mask_for(picture, mask_dir), seed=seed, batch_count=1,
            out_dir=str(out), file_stem=picture.stem,
        )  # fmt: skip
        try:
            made = generator.generate(one, on_event=_Forward(on_event, index, len(files)), cancel=cancel)
        except UserError as err:
            skipped.append(f"{picture.name}: {err}")
            on_event(Log(message=f"skipped {picture.name}: {err}", level="warning"))
            continue
        if not made:
            cancelled = True
            break
        results.extend(made)
    on_event(
        Finished(
            output=str(out),
            cancelled=cancelled,
            summary={
                "images": [str(r.path) for r in results],
                "skipped": skipped,
                "seed": seed,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
    )
    return results


def _mask_for(picture: Path, mask_dir: str | Path | None) -> str:
    if not mask_dir:
        return ""
    for suffix in (picture.suffix, *IMAGE_SUFFIXES):
        candidate = Path(mask_dir) / f"{picture.stem}{suffix}"
        if candidate.is_file():
            return str(candidate)
    return ""  # no mask for this one: restyle the whole picture


class _Forward:
    """Re-counts one picture's events over the whole folder (progress, image index); its Finished is ours."""

    def __init__(self, on_event: EventCallback, index: int, count: int) -> None:
        self.on_event, self.index, self.count = on_event, index, count

    def __call__(self, event: Any) -> None:
        if isinstance(event, Progress):
            total = max(event.total, 1)
            event = dataclasses.replace(
                event, step=self.index * total + event.step, total=self.count * total,
                eta_s=None if event.it_per_s is None else (self.count * total - self.index * total - event.step)
                / max(event.it_per_s, 1e-9),
            )  # fmt: skip
        elif isinstance(event, ImageReady):
            event = dataclasses.replace(event, index=self.index)
        elif isinstance(event, Finished):
            return
        self.on_event(event)
