"""Over-sharpening after upscaling, measured on the output itself (whatever produced it).

The reference is a plain Lanczos upscale of the stage input to the output size. On skin-like pixels
(the classical YCrCb rule in ``lib.skin.skin_mask``) the high-frequency energy of the output
is compared with the reference's: a ratio well above 1 means skin was sharpened into texture it does
not have. Halo overshoot is how far the output's luma detail (its high band laid on the reference's
low band) goes beyond the local min/max of the reference at edges, in 8-bit levels. The local
engine's guard keeps its own output in bounds; this measure exists so that any upscaler (a hosted
one later) is held to the same figure.
"""

from __future__ import annotations

import cv2
import numpy as np

from media_routes.lib.skin import skin_mask

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


STRIP = 512  # output rows per strip: memory stays bounded at 4K


def oversharpening(output: np.ndarray, source: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
    """Skin high-frequency ratio and edge halo overshoot of ``output`` against Lanczos(``source``).

    Processed in horizontal strips with overlapping margins so a 4K frame needs tens of MB, not GBs.
    ``reference`` is the Lanczos upscale of ``source`` to the output size, when the caller has it.
    """
    h, w = output.shape[:2]
    factor = max(1.0, w / source.shape[1])
    sigma = max(1.0, 0.75 * factor)
    wide = 4.0 * sigma
    margin = int(3 * wide) + 16
    ref_full = reference if reference is not None else cv2.resize(source, (w, h), interpolation=cv2.INTER_LANCZOS4)
    k = np.ones((3, 3), np.uint8)
    skin_e_out = skin_e_ref = 0.0
    skin_n = edge_n = 0
    halo_sum = 0.0
    for top in range(0, h, STRIP):
        a, b = max(0, top - margin), min(h, top + STRIP + margin)
        keep = slice(top - a, top - a + min(STRIP, h - top))
        ref = ref_full[a:b]
        y_out = output[a:b].astype(np.float32) @ _LUMA
        y_ref = ref.astype(np.float32) @ _LUMA
        hf_out = (y_out - cv2.GaussianBlur(y_out, (0, 0), sigma))[keep]
        hf_ref = (y_ref - cv2.GaussianBlur(y_ref, (0, 0), sigma))[keep]
        skin = (skin_mask(ref) > 0.5)[keep]
        skin_e_out += float((hf_out[skin] ** 2).sum())
        skin_e_ref += float((hf_ref[skin] ** 2).sum())
        skin_n += int(skin.sum())
        hi, lo = cv2.dilate(y_ref, k)[keep], cv2.erode(y_ref, k)[keep]
        edges = (hi - lo) > 8.0
        # only high-frequency overshoot is a halo: take the output's detail on the reference's low band,
        # so a tone or colour change elsewhere in the chain is not mistaken for sharpening
        y_adj = (y_out - cv2.GaussianBlur(y_out, (0, 0), wide) + cv2.GaussianBlur(y_ref, (0, 0), wide))[keep]
        over = np.maximum(y_adj - hi, 0) + np.maximum(lo - y_adj, 0)
        halo_sum += float(over[edges].sum())
        edge_n += int(edges.sum())
    ratio = float(np.sqrt(skin_e_out / max(skin_e_ref, 1e-6))) if skin_n >= 256 else 1.0
    return {
        "skin_fraction": round(skin_n / (h * w), 4),
        "skin_hf_ratio": round(ratio, 4),
        "halo_overshoot": round(halo_sum / edge_n, 4) if edge_n else 0.0,
    }
