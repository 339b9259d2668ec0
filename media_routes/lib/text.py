"""Setting one line of headline text faithfully: glyph coverage, scripts that need shaping, and a
layout whose measured box is the box that is drawn.

* Coverage is read from the font's own character map (fontTools), so a character the font lacks is
  named at validation instead of being drawn as a box.
* Scripts that join or reorder (Arabic, Hebrew, Indic, Thai, combining marks, ...) are set by
  Pillow's Raqm layout (HarfBuzz shaping, FriBiDi direction) as one string. Letter-spacing
  (tracking) would have to split them into characters, which breaks the shaping, so tracking is
  refused for them at validation.
* With tracking, each character is drawn at the advance of the shaped prefix before it (kerning
  kept) plus the tracking; without, the string is drawn whole. Either way the ink is drawn on a
  scratch canvas first and measured there, so fitting and centring use the ink that is drawn.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

FONTS_DIR = Path(__file__).resolve().parent.parent / "fonts"

# Unicode blocks whose scripts need shaping even left to right (Indic, South-East Asian, Tibetan, ...)
_SHAPED_RANGES = [(0x0900, 0x0DFF), (0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF)]


def builtin_font_path(name: str) -> Path:
    return FONTS_DIR / f"{name}.ttf"


@lru_cache(maxsize=64)
def _cmap(path: str, mtime_ns: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True, fontNumber=0) as font:
        cmap = font.getBestCmap() or {}
    return frozenset(cmap)


def missing_glyphs(font_path: Path, text: str) -> list[str]:
    """The characters of ``text`` the font has no glyph for (spaces need none), in order, once each."""
    codepoints = _cmap(str(font_path), font_path.stat().st_mtime_ns)
    out: list[str] = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Cf",) or ord(ch) in codepoints or ch in out:
            continue
        out.append(ch)
    return out


def describe(chars: list[str]) -> str:
    return ", ".join(f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')})" for ch in chars)


def needs_shaping(text: str) -> bool:
    """Whether the text has right-to-left, joining or reordering script, or combining marks."""
    for ch in text:
        if unicodedata.bidirectional(ch) in ("R", "AL", "AN") or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
            return True
        if any(lo <= ord(ch) <= hi for lo, hi in _SHAPED_RANGES):
            return True
    return False


def can_shape() -> bool:
    """Pillow was built with Raqm (HarfBuzz + FriBiDi): complex scripts can be set."""
    return bool(features.check("raqm"))


def headline_problems(font_path: Path, text: str, *, tracking: float) -> list[str]:
    """Why this one line cannot be set faithfully with this font, or nothing."""
    problems = []
    missing = missing_glyphs(font_path, text)
    if missing:
        shown = describe(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        problems.append(f"the font {font_path.name} has no glyph for {shown}")
    if needs_shaping(text):
        if not can_shape():
            problems.append("this script needs shaping (Raqm), which this Pillow build lacks")
        elif tracking != 0:
            problems.append(
                "tracking splits the text into single characters, which breaks the shaping of this script; "
                "set tracking: 0"
            )
    return problems


def draw_line(font: ImageFont.FreeTypeFont, text: str, tracking_px: float) -> tuple[Image.Image, int, int]:
    """The line's ink, cropped, and the distance from the crop's top to the baseline; and the crop's
    left offset from the pen origin. Returns (ink, baseline_from_top, left_from_origin)."""
    ascent, descent = font.getmetrics()
    pad = int(font.size)
    advance = font.getlength(text) + abs(tracking_px) * max(len(text) - 1, 0)
    scratch = Image.new("L", (int(advance) + 4 * pad, ascent + descent + 2 * pad), 0)
    draw = ImageDraw.Draw(scratch)
    origin = (2 * pad, pad + ascent)
    if tracking_px == 0:
        draw.text(origin, text, font=font, fill=255, anchor="ls")
    else:
        for i, ch in enumerate(text):
            x = origin[0] + font.getlength(text[:i]) + tracking_px * i
            draw.text((x, origin[1]), ch, font=font, fill=255, anchor="ls")
    box = scratch.getbbox()
    if box is None:
        return Image.new("L", (1, 1), 0), 0, 0
    return scratch.crop(box), origin[1] - box[1], box[0] - origin[0]


def ink_width(font: ImageFont.FreeTypeFont, text: str, tracking_px: float) -> int:
    return draw_line(font, text, tracking_px)[0].width


def place_line(canvas: Image.Image, ink: Image.Image, baseline_from_top: int, centre: tuple[float, float]) -> None:
    """Paste the ink so that its box is centred at ``centre`` horizontally and the span from the ink's
    top to the baseline is centred vertically (descenders hang below)."""
    x = round(centre[0] - ink.width / 2)
    y = round(centre[1] - baseline_from_top / 2)
    canvas.paste(ink, (x, y))  # the canvas is blank: a plain paste keeps the anti-aliasing as drawn


def ink_box(mask: np.ndarray, threshold: float = 0.5) -> list[int]:
    ys, xs = np.nonzero(mask > threshold)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())] if len(xs) else []
