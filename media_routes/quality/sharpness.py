"""Over-sharpening after upscaling, measured on the output itself (whatever produced it).

The reference is a plain Lanczos upscale of the stage input to the output size. On skin-like pixels
(the classical YCrCb rule in ``engine.k_upscale.skin_mask``) the high-frequency energy of the output
is compared with the reference's: a ratio well above 1 means skin was sharpened into texture it does
not have. Halo overshoot is how far the output's luma detail (its high band laid on the reference's
low band) goes beyond the local min/max of the reference at edges, in 8-bit levels. The local
engine's guard keeps its own output in bounds; this measure exists so that any upscaler (a hosted
one later) is held to the same figure.
"""

from __future__ import annotations

import cv2
import numpy as np

from media_routes.engine.k_upscale import skin_mask

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def oversharpening(output: np.ndarray, source: np.ndarray) -> dict[str, float]:
    h, w = output.shape[:2]
    factor = max(1.0, w / source.shape[1])
    ref = cv2.resize(source, (w, h), interpolation=cv2.INTER_LANCZOS4)
    y_out = output.astype(np.float32) @ _LUMA
    y_ref = ref.astype(np.float32) @ _LUMA
    sigma = max(1.0, 0.75 * factor)
    hf_out = y_out - cv2.GaussianBlur(y_out, (0, 0), sigma)
    hf_ref = y_ref - cv2.GaussianBlur(y_ref, (0, 0), sigma)
    skin = skin_mask(ref) > 0.5
    skin_fraction = float(skin.mean())
    ratio = 1.0
    if skin.sum() >= 256:
        ratio = float(np.sqrt((hf_out[skin] ** 2).mean() / max(float((hf_ref[skin] ** 2).mean()), 1e-6)))
    k = np.ones((3, 3), np.uint8)
    hi, lo = cv2.dilate(y_ref, k), cv2.erode(y_ref, k)
    edges = (hi - lo) > 8.0
    # only high-frequency overshoot is a halo: take the output's detail on the reference's low band,
    # so a tone or colour change elsewhere in the chain is not mistaken for sharpening
    wide = 4.0 * sigma
    y_adj = y_out - cv2.GaussianBlur(y_out, (0, 0), wide) + cv2.GaussianBlur(y_ref, (0, 0), wide)
    over = np.maximum(y_adj - hi, 0) + np.maximum(lo - y_adj, 0)
    halo = float(over[edges].mean()) if edges.any() else 0.0
    return {
        "skin_fraction": round(skin_fraction, 4),
        "skin_hf_ratio": round(ratio, 4),
        "halo_overshoot": round(halo, 4),
    }
