"""Delivery format catalog: the static ``format`` partition dimension.

Each format has an aspect ratio, a still delivery size per K-level and a video size.
2K stills use the classic social sizes (1080-class); 4K stills double them (2160-class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

KLevel = Literal["2K", "4K"]

# Long side of the upscaled master per K-level.
K_LEVEL_LONG_SIDE: dict[str, int] = {"2K": 2048, "4K": 4096}


@dataclass(frozen=True)
class DeliveryFormat:
    key: str
    aspect_w: int
    aspect_h: int
    still_2k: tuple[int, int]  # (width, height)
    video: tuple[int, int]  # (width, height)
    label: str

    @property
    def aspect(self) -> float:
        return self.aspect_w / self.aspect_h

    def still_size(self, k_level: str) -> tuple[int, int]:
        w, h = self.still_2k
        return (w * 2, h * 2) if k_level == "4K" else (w, h)


FORMATS: dict[str, DeliveryFormat] = {
    f.key: f
    for f in (
        DeliveryFormat("1x1", 1, 1, (1080, 1080), (1080, 1080), "square feed post"),
        DeliveryFormat("4x5", 4, 5, (1080, 1350), (1080, 1350), "portrait feed post"),
        DeliveryFormat("9x16", 9, 16, (1080, 1920), (1080, 1920), "story / reel / short"),
        DeliveryFormat("16x9", 16, 9, (1920, 1080), (1920, 1080), "landscape video / display"),
    )
}

FORMAT_KEYS: list[str] = list(FORMATS)


def get_format(key: str) -> DeliveryFormat:
    try:
        return FORMATS[key]
    except KeyError:
        raise KeyError(f"unknown format {key!r}; known formats: {', '.join(FORMAT_KEYS)}") from None


def canvas_size(w: int, h: int, aspect: float) -> tuple[int, int]:
    """Smallest grown canvas (width, height) containing ``w x h`` with width/height ~= ``aspect``."""
    if not aspect > 0 or not math.isfinite(aspect):
        raise ValueError(f"aspect must be a positive finite number, got {aspect}")
    if w / h < aspect:
        return max(w, round(h * aspect)), h
    return w, max(h, round(w / aspect))
