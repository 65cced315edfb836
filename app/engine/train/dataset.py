"""Scanning a training folder: usable images with their captions, skipped files with reasons, tag counts.

No model and no torch here: the GUI calls ``scan_dataset`` to fill its dataset grid while the user picks
settings, so it must be quick (JPEGs are checked with a 1/8-scale decode).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.errors import DatasetError
from app.engine.train.images import IMAGE_EXTENSIONS, SkipImage, probe_image

# Folders we write next to an adapter (or that tools create) are never training data.
_IGNORED_DIR_SUFFIXES = (".checkpoints", ".samples")


@dataclass(frozen=True)
class DatasetItem:
    path: Path
    caption: str  # the full caption used for training (trigger included)
    caption_source: str  # "txt" | "filename" | "none"
    width: int  # after EXIF orientation
    height: int
    mode: str  # the file's own colour mode, e.g. CMYK or I;16 (it is converted when loaded)


@dataclass(frozen=True)
class SkippedItem:
    path: Path
    reason: str


@dataclass
class DatasetReport:
    folder: Path
    items: list[DatasetItem] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    tag_frequency: dict[str, int] = field(default_factory=dict)
    # kohya's ss_tag_frequency layout: {sub-folder name: {tag: count}}
    tag_frequency_by_folder: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        line = f"{len(self.items)} usable image(s), {len(self.skipped)} skipped"
        return line + "".join(f"\n  skipped {s.path.name}: {s.reason}" for s in self.skipped)

    def require_usable(self) -> None:
        if not self.items:
            detail = f" ({len(self.skipped)} file(s) skipped: {self.skipped[0].reason}, …)" if self.skipped else ""
            raise DatasetError(
                f"No usable image in {self.folder}{detail}.",
                hint=f"Add {', '.join(IMAGE_EXTENSIONS)} images.",
                details=self.summary(),
            )


def scan_dataset(
    folder: str | Path,
    *,
    trigger: str = "",
    min_side: int = 64,
    max_pixels: int = 80_000_000,
    filename_captions: bool = True,
) -> DatasetReport:
    """List every image under ``folder`` (recursively), checking each one; never raises for a bad file."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"Dataset folder not found: {folder}")
    report = DatasetReport(folder)
    by_folder: dict[str, Counter[str]] = {}
    for path in _image_files(folder):
        if path.is_symlink() and not path.exists():  # a link whose target moved or lives on an unmounted drive
            report.skipped.append(SkippedItem(path, f"broken link: its target {_link_target(path)} does not exist"))
            continue
        try:
            info = probe_image(path, min_side=min_side, max_pixels=max_pixels)
        except SkipImage as err:
            report.skipped.append(SkippedItem(path, str(err)))
            continue
        except OSError as err:  # vanished or unreadable (permissions) between listing and reading
            report.skipped.append(SkippedItem(path, f"unreadable: {err.strerror or err}"))
            continue
        text, source = read_caption(path, filename_captions=filename_captions)
        caption = with_trigger(text, trigger)
        report.items.append(DatasetItem(path, caption, source, info.width, info.height, info.mode))
        group = path.parent.name if path.parent != folder else folder.name
        by_folder.setdefault(group, Counter()).update(split_tags(caption))
    total: Counter[str] = Counter()
    for counts in by_folder.values():
        total.update(counts)
    report.tag_frequency = dict(total.most_common())
    report.tag_frequency_by_folder = {k: dict(v.most_common()) for k, v in by_folder.items()}
    return report


def scan_training_set(cfg) -> DatasetReport:
    """``scan_dataset`` with a training config's own limits (the run, its ``--scan-only`` preview and a
    checkpoint's validation all scan the same way)."""
    return scan_dataset(
        cfg.dataset_dir,
        trigger=cfg.trigger,
        min_side=cfg.min_image_side,
        max_pixels=cfg.max_image_pixels,
        filename_captions=cfg.filename_captions,
    )


def hold_out(items: list[DatasetItem], count: int, *, seed: int) -> tuple[list[DatasetItem], list[DatasetItem]]:
    """Split off ``count`` items for validation, the same ones for the same seed (kept in folder order)."""
    picked = set(random.Random(f"{seed}:holdout").sample(range(len(items)), count))
    return ([it for i, it in enumerate(items) if i not in picked], [it for i, it in enumerate(items) if i in picked])


def read_caption(image: Path, *, filename_captions: bool = True) -> tuple[str, str]:
    """The caption of one image and where it came from: a .txt sidecar, else the cleaned file name."""
    sidecar = image.with_suffix(".txt")
    if sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8", errors="replace")
        return " ".join(text.replace("\ufeff", "").split()), "txt"
    if filename_captions:
        cleaned = clean_filename(image.stem)
        if cleaned:
            return cleaned, "filename"
    return "", "none"


def clean_filename(stem: str) -> str:
    """'sunset_over-hills (2)' → 'sunset over hills'; camera names and bare counters become ''."""
    text = re.sub(r"[\(\[\{][^\)\]\}]*[\)\]\}]", " ", stem)  # "(2)", "[copy]"
    text = re.sub(r"[_\-.+]+", " ", text)
    words = [w for w in text.split() if not re.fullmatch(r"\d+|img|dsc|dscn|dcim|pxl|image|copy", w, re.I)]
    return " ".join(words)


def with_trigger(caption: str, trigger: str) -> str:
    trigger = trigger.strip()
    if not trigger:
        return caption
    if not caption:
        return trigger
    if caption == trigger or caption.startswith(trigger + ","):
        return caption
    return f"{trigger}, {caption}"


def split_tags(caption: str) -> list[str]:
    return [t.strip() for t in caption.split(",") if t.strip()]


def _image_files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(p.startswith(".") or p.endswith(_IGNORED_DIR_SUFFIXES) for p in rel[:-1]) or rel[-1].startswith("."):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and (path.is_file() or path.is_symlink()):
            found.append(path)  # broken links too: the scan lists them as skipped, never drops them silently
    return sorted(found)


def _link_target(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return "(unreadable)"
