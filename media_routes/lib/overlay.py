"""Lifting an exactly authored layer (the headline's glyphs in one flat colour) off a still, and setting it again.

A stage that resamples the picture (``k_upscale``) would otherwise resample and sharpen the type with it: each
stroke gains a light halo and a dark undershoot, and its interior leaves the brand colour. Instead the type is
lifted off (:func:`lift`: the covered pixels are filled from their surroundings, the *plate*), the plate is
processed, and the type is set again over it at the new resolution from its source (:func:`composite`, with the
coverage rasterised from the font at that size), so the strokes are exactly as sharp and exactly as coloured as
at the base.

Pure functions on uint8 sRGB arrays; the blend is the base composition's (straight alpha in sRGB, rounded once).
"""

from __future__ import annotations

import cv2
import numpy as np

# the fill's neighbourhood (px): strokes of the authored canvas are a few pixels wide, so a short reach suffices
LIFT_RADIUS = 3


def lift(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The plate under a layer of coverage ``alpha`` (uint8, 0..255): every pixel the layer touches, grown by one
    pixel so its anti-aliased fringe goes too, filled from the uncovered pixels around it (``cv2.inpaint``,
    Telea's fast marching method). Pixels the layer does not touch are returned unchanged."""
    if alpha.shape != image.shape[:2]:
        raise ValueError(f"coverage {alpha.shape} does not match image {image.shape[:2]}")
    covered = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    if not covered.any():
        return image.copy()
    plate = cv2.inpaint(np.ascontiguousarray(image), covered, LIFT_RADIUS, cv2.INPAINT_TELEA)
    return np.where(covered[..., None] > 0, plate, image)


def composite(plate: np.ndarray, alpha: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Set a flat-colour layer of coverage ``alpha`` (uint8) over ``plate``: ``plate * (1 - a) + rgb * a``."""
    if alpha.shape != plate.shape[:2]:
        raise ValueError(f"coverage {alpha.shape} does not match plate {plate.shape[:2]}")
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = plate.astype(np.float32) * (1.0 - a) + np.asarray(rgb, np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
