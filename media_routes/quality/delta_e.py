"""CIEDE2000 colour difference, from colour-science (verified against Sharma, Wu and Dalal 2005)."""

from __future__ import annotations

import colour
import numpy as np

from media_routes.lib.imaging import hex_to_rgb, srgb_to_lab


def delta_e00(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between CIE L*a*b* arrays (broadcasting, last axis = L, a, b)."""
    return np.asarray(colour.delta_E(np.asarray(lab1, np.float64), np.asarray(lab2, np.float64), method="CIE 2000"))


def hex_to_lab(code: str) -> np.ndarray:
    """A #RRGGBB sRGB code as CIE L*a*b* (D65)."""
    return srgb_to_lab(np.array([[hex_to_rgb(code)]], dtype=np.uint8))[0, 0].astype(np.float64)
