"""Draw the example campaigns' small assets procedurally (nothing is downloaded).

    python scripts/make_example_assets.py

Writes, deterministically:
  campaigns/noir-sneaker/assets/sneaker.png      RGBA product cutout
  campaigns/noir-sneaker/assets/logo_draft.png   RGBA logo with a defect (the base stage "botches" it)
  campaigns/noir-sneaker/assets/logo.png         RGBA corrected logo (the replace fix's patch)
  campaigns/atrium-residences/assets/pole_mask.png  greyscale mask of a stray pole to remove
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
FONT = ROOT / "media_routes" / "fonts" / "DejaVuSans-Bold.ttf"
SS = 4  # supersampling factor for anti-aliased edges


def _down(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    return im.resize(size, Image.Resampling.LANCZOS)


def sneaker() -> Image.Image:
    w, h = 640, 340
    im = Image.new("RGBA", (w * SS, h * SS), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)

    def P(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * SS, y * SS) for x, y in pts]

    # sole: white midsole over a gum outsole
    d.rounded_rectangle(P([(20, 262), (620, 318)])[0] + P([(620, 318)])[0], radius=26 * SS, fill=(150, 96, 52, 255))
    d.rounded_rectangle((20 * SS, 232 * SS, 624 * SS, 292 * SS), radius=28 * SS, fill=(240, 238, 232, 255))
    # upper
    upper = [
        (40, 240),
        (60, 170),
        (150, 150),
        (250, 96),
        (330, 70),
        (400, 62),
        (430, 100),
        (470, 150),
        (560, 180),
        (612, 214),
        (618, 240),
    ]
    d.polygon(P(upper), fill=(22, 46, 110, 255))
    # toe cap and heel counter
    d.polygon(P([(470, 150), (560, 180), (612, 214), (618, 240), (470, 240)]), fill=(30, 60, 140, 255))
    d.polygon(P([(40, 240), (60, 170), (120, 158), (130, 240)]), fill=(14, 30, 72, 255))
    # brand stripe in electric yellow
    d.polygon(P([(140, 220), (300, 150), (470, 120), (520, 132), (330, 190), (170, 238)]), fill=(245, 217, 10, 255))
    # collar opening
    d.ellipse(P([(300, 56), (420, 96)])[0] + P([(420, 96)])[0], fill=(8, 12, 24, 255))
    # laces
    for i in range(6):
        x = 320 + i * 22
        y = 96 + i * 12
        d.line(P([(x, y), (x + 40, y - 16)]), fill=(235, 235, 235, 255), width=5 * SS)
        d.ellipse(P([(x - 4, y - 4), (x + 4, y + 4)])[0] + P([(x + 4, y + 4)])[0], fill=(200, 200, 210, 255))
    # stitching highlight along the top of the sole
    d.line(P([(44, 236), (600, 236)]), fill=(255, 255, 255, 180), width=2 * SS)
    return _down(im, (w, h))


def logo(defect: bool) -> Image.Image:
    w, h = 220, 84
    im = Image.new("RGBA", (w * SS, h * SS), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(str(FONT), 52 * SS)
    d.rounded_rectangle(
        (2 * SS, 2 * SS, (w - 2) * SS, (h - 2) * SS),
        radius=16 * SS,
        outline=(245, 217, 10, 255),
        width=5 * SS,
    )
    text = "VOLT"
    tw = d.textlength(text, font=font)
    d.text(((w * SS - tw) / 2, h * SS / 2), text, font=font, fill=(245, 217, 10, 255), anchor="lm")
    if defect:
        # a generation-style defect: a smeared, half-erased letter and a stray blob
        d.rectangle((118 * SS, 18 * SS, 150 * SS, 62 * SS), fill=(0, 0, 0, 0))
        d.ellipse((122 * SS, 26 * SS, 162 * SS, 58 * SS), fill=(120, 110, 40, 220))
    out = _down(im, (w, h))
    return out.filter(ImageFilter.GaussianBlur(1.2)) if defect else out


def pole_mask() -> Image.Image:
    # the atrium scene is 16:9 at 1K -> 1024 x 576; the pole occupies x 0.80..0.812, y 0.30..0.96
    w, h = 1024, 576
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    d.rectangle((812, 162, 838, 562), fill=255)
    d.ellipse((804, 150, 846, 186), fill=255)  # lamp head
    return im


def main() -> int:
    a = ROOT / "campaigns" / "noir-sneaker" / "assets"
    b = ROOT / "campaigns" / "atrium-residences" / "assets"
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    sneaker().save(a / "sneaker.png")
    logo(defect=True).save(a / "logo_draft.png")
    logo(defect=False).save(a / "logo.png")
    pole_mask().save(b / "pole_mask.png")
    print(f"wrote assets under {a} and {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
