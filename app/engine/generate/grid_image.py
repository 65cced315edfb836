"""Drawing a comparison grid: cells in rows and columns, labels along the top and left, one block per Z value.

Cells smaller than ``min_cell`` pixels are scaled up by a whole factor with nearest-neighbour, so a 64 px
model's cells stay crisp and the labels (drawn at a size that follows the scaled cell) stay readable.
Pillow's built-in scalable font is used: no font file is needed on any system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
MISSING = (225, 225, 225)  # a cell that was not rendered (a cancelled grid)


@dataclass(frozen=True)
class GridLayout:
    """Where things landed in the grid image (stored in the grid PNG's record)."""

    cell_width: int  # after scaling
    cell_height: int
    scale: int
    left: int  # width of the row-label band
    top: int  # height of the column-label band (and the Z title above it)
    block_width: int  # one Z block, labels included
    gap: int  # between Z blocks


def scale_for(width: int, height: int, min_cell: int) -> int:
    return max(1, math.ceil(min_cell / max(1, min(width, height))))


def compose_grid(
    cells: dict[tuple[int, int, int], Any],
    *,
    x_labels: list[str],
    y_labels: list[str],
    z_labels: list[str],
    min_cell: int = 192,
) -> tuple[Any, GridLayout]:
    """One PIL image of every cell ``(x, y, z) -> PIL image``; missing cells are drawn grey."""
    from PIL import Image, ImageDraw

    columns, rows, blocks = max(1, len(x_labels)), max(1, len(y_labels)), max(1, len(z_labels))
    sizes = [img.size for img in cells.values()] or [(64, 64)]
    raw_w, raw_h = max(w for w, _ in sizes), max(h for _, h in sizes)
    scale = scale_for(raw_w, raw_h, min_cell)
    cw, ch = raw_w * scale, raw_h * scale
    font = _font(max(12, min(32, cw // 11)))
    pad = max(4, font.size // 3)
    line = font.size + max(2, font.size // 4)

    col_lines = [_wrap(t, font, cw - 2 * pad) for t in x_labels] if x_labels else []
    row_width = min(max((_text_width(t, font) for t in y_labels), default=0) + 2 * pad, int(cw * 1.5))
    row_lines = [_wrap(t, font, row_width - 2 * pad) for t in y_labels] if y_labels else []
    z_lines = [_wrap(t, font, columns * cw + row_width) for t in z_labels] if z_labels else []
    left = row_width if y_labels else 0
    z_band = max((len(ls) for ls in z_lines), default=0) * line + (2 * pad if z_lines else 0)
    top = z_band + (max(len(ls) for ls in col_lines) * line + 2 * pad if col_lines else 0)
    block_w = left + columns * cw
    gap = 2 * pad * 2 if blocks > 1 else 0
    width = blocks * block_w + (blocks - 1) * gap
    height = top + rows * ch

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for z in range(blocks):
        x0 = z * (block_w + gap)
        if z_lines:
            _draw_lines(draw, z_lines[z], font, x0, 0, block_w, z_band, line)
        for x, lines in enumerate(col_lines):
            _draw_lines(draw, lines, font, x0 + left + x * cw, z_band, cw, top - z_band, line)
        for y, lines in enumerate(row_lines):
            _draw_lines(draw, lines, font, x0, top + y * ch, left, ch, line)
        for y in range(rows):
            for x in range(columns):
                box = (x0 + left + x * cw, top + y * ch)
                img = cells.get((x, y, z))
                if img is None:
                    draw.rectangle([box, (box[0] + cw - 1, box[1] + ch - 1)], fill=MISSING, outline=BACKGROUND)
                    continue
                img = img.convert("RGB")
                if scale > 1 or img.size != (raw_w, raw_h):
                    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
                canvas.paste(img, box)
    layout = GridLayout(cell_width=cw, cell_height=ch, scale=scale, left=left, top=top, block_width=block_w, gap=gap)
    return canvas, layout


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType (the wheels do)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _text_width(text: str, font) -> int:
    return int(math.ceil(font.getlength(text)))


def _wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word longer than a line is cut by characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if _text_width(candidate, font) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
        while _text_width(current, font) > width and len(current) > 1:
            cut = len(current)
            while cut > 1 and _text_width(current[:cut], font) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines or [""]


def _draw_lines(draw, lines: list[str], font, x: int, y: int, width: int, height: int, line: int) -> None:
    """Centre a block of lines in the box (x, y, width, height)."""
    top = y + max(0, (height - len(lines) * line) // 2)
    for i, text in enumerate(lines):
        left = x + max(0, (width - _text_width(text, font)) // 2)
        draw.text((left, top + i * line), text, fill=INK, font=font)
