"""Where skin is likely: the classical YCrCb colour rule shared by the upscaler's guard and the sharpness measure.

Used by ``engine.k_upscale`` (to scale detail enhancement back on skin) and ``quality.sharpness`` (to measure
over-sharpened skin), which must agree on what counts as skin and must not import each other.
"""

from __future__ import annotations

import cv2
import numpy as np

# Skin-colour rule in OpenCV's 8-bit YCrCb (Chai & Ngan style bounds): Cr and Cb ranges, minimum luma.
SKIN_CR = (135, 180)
SKIN_CB = (85, 135)
SKIN_Y_MIN = 40


def skin_mask(image: np.ndarray) -> np.ndarray:
    """Feathered skin-likelihood mask (float32 0..1, input size) from a YCrCb colour rule."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    raw = (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]) & (y > SKIN_Y_MIN)
    mask: np.ndarray = raw.astype(np.uint8) * 255
    k = max(3, (round(max(image.shape[:2]) / 256) | 1))  # 5 px at 1024
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), k / 2.0)
    return soft
