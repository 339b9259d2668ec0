"""CIEDE2000 colour difference (Sharma, Wu and Dalal 2005), evaluated in float32.

The formula is colour-science's ``delta_E_CIE2000`` (``intermediate_attributes_CIE2000``) step for step, with
the same branch conventions for hue, evaluated in float32 instead of float64 and without colour-science's
per-call domain handling: the brand measure runs it over every stroke pixel of every video frame, where the
float64 reference cost as much as encoding the video. ``test_quality_colour.py`` checks it on Sharma's 34 published
pairs (to 1e-4) and ``test_colour_paths.py`` against colour-science on random pairs (to 1e-3; about 2e-5 measured).
"""

from __future__ import annotations

import numpy as np

from media_routes.lib.imaging import hex_to_rgb, srgb_to_lab

_F = np.float32
_25_7 = _F(25.0**7)
_DEG = _F(np.pi / 180.0)


def _hue(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hue angle in degrees in [0, 360) in float64; 0 for the neutral axis (a = b = 0), as colour-science."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return np.where((a64 == 0) & (b64 == 0), 0.0, np.degrees(np.arctan2(b64, a64)) % 360)


def delta_e00(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between CIE L*a*b* arrays (broadcasting, last axis = L, a, b; kL = kC = kH = 1), float32."""
    lab1 = np.asarray(lab1, _F)
    lab2 = np.asarray(lab2, _F)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) * _F(0.5)
    c_bar_7 = c_bar**7
    g = _F(0.5) * (_F(1.0) - np.sqrt(c_bar_7 / (c_bar_7 + _25_7)))
    a1p = (_F(1.0) + g) * a1
    a2p = (_F(1.0) + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = _hue(a1p, b1)
    h2p = _hue(a2p, b2)
    dl = L2 - L1
    dc = c2p - c1p
    # the hue branches are taken in float64: CIEDE2000 is discontinuous where two hues are exactly opposite
    # (Sharma's pairs 13 and 14), and float32 rounding would pick the other side of that edge
    dh_raw = h2p - h1p
    c_prod = c1p * c2p
    dh = np.where(dh_raw > 180, dh_raw - 360, np.where(dh_raw < -180, dh_raw + 360, dh_raw)).astype(_F)
    dh = np.where(c_prod == 0, _F(0.0), dh)
    d_big_h = _F(2.0) * np.sqrt(c_prod) * np.sin(dh * (_DEG * _F(0.5)))
    l_bar = (L1 + L2) * _F(0.5)
    cp_bar = (c1p + c2p) * _F(0.5)
    h_sum = h1p + h2p
    far = np.fabs(h1p - h2p) > 180
    h_bar = (np.where(far, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) * 0.5).astype(_F)
    h_bar = np.where(c_prod == 0, h_sum.astype(_F), h_bar)
    hr = h_bar * _DEG
    t = (
        _F(1.0)
        - _F(0.17) * np.cos(hr - _F(30.0) * _DEG)
        + _F(0.24) * np.cos(_F(2.0) * hr)
        + _F(0.32) * np.cos(_F(3.0) * hr + _F(6.0) * _DEG)
        - _F(0.20) * np.cos(_F(4.0) * hr - _F(63.0) * _DEG)
    )
    d_theta = _F(30.0) * np.exp(-(((h_bar - _F(275.0)) / _F(25.0)) ** 2))
    cp_bar_7 = cp_bar**7
    r_c = _F(2.0) * np.sqrt(cp_bar_7 / (cp_bar_7 + _25_7))
    l_50 = (l_bar - _F(50.0)) ** 2
    s_l = _F(1.0) + (_F(0.015) * l_50) / np.sqrt(_F(20.0) + l_50)
    s_c = _F(1.0) + _F(0.045) * cp_bar
    s_h = _F(1.0) + _F(0.015) * cp_bar * t
    r_t = -np.sin(_F(2.0) * d_theta * _DEG) * r_c
    tl, tc, th = dl / s_l, dc / s_c, d_big_h / s_h
    return np.sqrt(tl * tl + tc * tc + th * th + r_t * tc * th)


def hex_to_lab(code: str) -> np.ndarray:
    """A #RRGGBB sRGB code as CIE L*a*b* (D65)."""
    return srgb_to_lab(np.array([[hex_to_rgb(code)]], dtype=np.uint8))[0, 0].astype(np.float64)
