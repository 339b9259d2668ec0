"""Stage 2, local engine: measure lighting against the brief's targets and iterate until it is locked.

Measurements (all from CIE L*a*b* / XYZ computed with colour-science):

* exposure: median L*, the 1st/99th percentiles and the fraction of clipped pixels;
* white balance: correlated colour temperature (McCamy) of the mean XYZ of near-neutral pixels
  (low chroma, mid luminance), falling back to the whole frame when too few are neutral;
* contrast: the L* spread between the 5th and 95th percentiles.

Each iteration applies a damped correction toward the targets: a von Kries chromatic adaptation
(CAT02) from the measured to the target white point, an exposure gain in linear light, and a
contrast scale of L* around the median. It stops when every measure is inside its tolerance or at
``max_iterations``; at least one iteration always runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import colour
import numpy as np

from media_routes.lib.imaging import lab_to_srgb, linear_to_srgb, srgb_to_lab, to_float, to_uint8
from media_routes.spec import LightingTargets

NEUTRAL_CHROMA = 15.0  # C*ab below which a pixel counts as near-neutral
MIN_NEUTRAL_FRACTION = 0.001  # ~260 sampled pixels at 1K
DAMPING = 0.8  # fraction of the measured error corrected per iteration


@dataclass
class LightingMeasure:
    exposure: float  # median L*
    l_p01: float
    l_p99: float
    clipped_low: float  # fraction of pixels with L* < 1
    clipped_high: float  # fraction with L* > 99
    white_balance_k: float
    neutral_fraction: float
    contrast: float  # L* p95 - p5

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass
class LightingResult:
    image: np.ndarray
    iterations: list[dict[str, float]] = field(default_factory=list)
    locked: bool = False
    final: LightingMeasure | None = None


def _sample(image: np.ndarray, max_px: int = 262_144) -> np.ndarray:
    """Measure on a strided sample: statistics at 1K do not need every pixel."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / max_px)))
    return image[::step, ::step]


def neutral_pixels(image: np.ndarray) -> np.ndarray:
    """Boolean mask (on the measurement sample grid) of near-neutral, mid-luminance pixels."""
    lab = srgb_to_lab(_sample(image)).reshape(-1, 3)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    return (chroma < NEUTRAL_CHROMA) & (lab[:, 0] > 15) & (lab[:, 0] < 95)


def measure(image: np.ndarray, neutrals: np.ndarray | None = None) -> LightingMeasure:
    """Measure exposure, white balance and contrast.

    ``neutrals`` fixes which pixels the white balance is read from (see :func:`neutral_pixels`);
    :func:`iterate` picks them once on its input so the estimate does not jump as pixels move in and
    out of the neutral set while the correction proceeds.
    """
    img = _sample(image)
    lab = srgb_to_lab(img).reshape(-1, 3)
    L = lab[:, 0]
    p01, p05, p50, p95, p99 = np.percentile(L, [1, 5, 50, 95, 99])
    neutral = neutral_pixels(image) if neutrals is None else neutrals
    frac = float(neutral.mean())
    xyz = colour.RGB_to_XYZ(to_float(img).reshape(-1, 3), "sRGB", apply_cctf_decoding=True)
    sel = xyz[neutral] if frac >= MIN_NEUTRAL_FRACTION else xyz
    xy = colour.XYZ_to_xy(sel.mean(axis=0))
    cct = float(colour.temperature.xy_to_CCT_McCamy1992(xy))
    return LightingMeasure(
        exposure=float(p50),
        l_p01=float(p01),
        l_p99=float(p99),
        clipped_low=float((L < 1).mean()),
        clipped_high=float((L > 99).mean()),
        white_balance_k=float(np.clip(cct, 1000, 25000)),
        neutral_fraction=frac,
        contrast=float(p95 - p05),
    )


def within(m: LightingMeasure, t: LightingTargets) -> bool:
    tol = t.tolerance
    return (
        abs(m.exposure - t.exposure) <= tol.exposure
        and abs(m.white_balance_k - t.white_balance_k) <= tol.white_balance_k
        and abs(m.contrast - t.contrast) <= tol.contrast
    )


def _white_xyz(kelvin: float) -> np.ndarray:
    return colour.xy_to_XYZ(colour.temperature.CCT_to_xy_Kang2002(float(np.clip(kelvin, 1667, 25000))))


def correct_once(
    image: np.ndarray, m: LightingMeasure, t: LightingTargets, damping: float = DAMPING, wb_gain: float = 1.0
) -> np.ndarray:
    """One damped correction step toward the targets.

    ``wb_gain`` scales the white-balance step: a scene whose neutrals respond only partly to the
    adaptation (coloured light on coloured surfaces) gets a proportionally larger step next time.
    """
    # 1) white balance: chromatic adaptation from the measured white to a damped target white
    k_to = m.white_balance_k + damping * wb_gain * (t.white_balance_k - m.white_balance_k)
    xyz = colour.RGB_to_XYZ(to_float(image), "sRGB", apply_cctf_decoding=True)
    xyz = colour.adaptation.chromatic_adaptation_VonKries(
        xyz, _white_xyz(m.white_balance_k), _white_xyz(k_to), transform="CAT02"
    )
    lin = np.asarray(colour.XYZ_to_RGB(xyz, "sRGB", apply_cctf_encoding=False), dtype=np.float32)
    # 2) exposure: gain in linear light moving the median L* toward the target
    y_now = float(colour.Lab_to_XYZ([m.exposure, 0, 0])[1])
    y_tgt = float(colour.Lab_to_XYZ([m.exposure + damping * (t.exposure - m.exposure), 0, 0])[1])
    lin = lin * (y_tgt / max(y_now, 1e-6))
    adapted = to_uint8(linear_to_srgb(np.clip(lin, 0, 1)))
    # 3) contrast: scale L* around its median
    lab = srgb_to_lab(adapted)
    L = lab[..., 0]
    p05, p50, p95 = np.percentile(_sample(L), [5, 50, 95])
    spread = max(float(p95 - p05), 1e-3)
    want = spread + damping * (t.contrast - spread)
    lab[..., 0] = np.clip(p50 + (L - p50) * (want / spread), 0, 100)
    return lab_to_srgb(lab)


def iterate(image: np.ndarray, targets: LightingTargets) -> LightingResult:
    """Measure, correct, re-measure until locked or out of iterations (at least one iteration runs)."""
    current = image
    log: list[dict[str, float]] = []
    neutrals = neutral_pixels(image)
    m = measure(current, neutrals)
    wb_gain = 1.0
    for i in range(targets.max_iterations):
        before = m
        current = correct_once(current, before, targets, wb_gain=wb_gain)
        m = measure(current, neutrals)
        intended = DAMPING * wb_gain * (targets.white_balance_k - before.white_balance_k)
        if abs(intended) > 1.0:
            efficiency = (m.white_balance_k - before.white_balance_k) / intended
            wb_gain = float(np.clip(wb_gain / max(efficiency, 0.25), 0.5, 2.0))
        row: dict[str, float] = {
            "iteration": i + 1,
            "wb_gain": round(wb_gain, 3),
            **{f"before_{k}": v for k, v in before.as_dict().items()},
        }
        row.update({f"after_{k}": v for k, v in m.as_dict().items()})
        log.append(row)
        if within(m, targets):
            return LightingResult(image=current, iterations=log, locked=True, final=m)
    return LightingResult(image=current, iterations=log, locked=within(m, targets), final=m)
