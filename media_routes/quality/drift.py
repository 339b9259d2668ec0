"""Hand-off drift: how much a stage moved the picture it was given, and where.

All measures run at a working size (long side ``WORK_SIDE``) on images already brought to the same
geometry by :func:`align` (an upscale is compared after reducing it back; an outpaint on the region
where the original sits).

* **grid colour drift**: the frame is cut into ``GRID`` x ``GRID`` cells; CIEDE2000 between the
  cells' mean L*a*b* in input and output (mean, p95, max over cells). The cell values make the
  drift heatmap.
* **shadow chroma retention**: over the input's deep, coloured shadows (L* < 35, C*ab > 6), mean
  chroma in the output divided by mean chroma in the input. 1.0 = kept; a model that turns deep
  blue shadows flat black drives it toward 0.
* **SSIM outside the allowed region**: structural similarity of L* (scikit-image) between input and
  output, counting only pixels the stage was not allowed to change.

:func:`bridge` is the low-strength realignment: a colour transfer restricted to low frequencies
in L*a*b* that pulls an output's large-scale colour back toward a reference while leaving its
detail alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from media_routes.lib.imaging import lab_to_srgb, srgb_to_lab
from media_routes.quality.delta_e import delta_e00

WORK_SIDE = 512
GRID = 16
SHADOW_L = 35.0
SHADOW_C = 6.0
HEATMAP_MAX_DE = 10.0  # colour scale of the heatmap saturates here


def working_size(shape: tuple[int, ...]) -> tuple[int, int]:
    h, w = shape[:2]
    s = WORK_SIDE / max(h, w)
    return max(8, round(w * s)), max(8, round(h * s))


def to_work(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[1] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def align(
    reference: np.ndarray, output: np.ndarray, placement: tuple[int, int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bring a stage's output onto its reference's geometry at the working size.

    ``placement`` (x, y, w, h) is where the reference sits inside ``output`` scaled to ``output``'s
    size, for outpainted canvases; otherwise the whole output corresponds to the whole reference.
    """
    if placement is not None:
        x, y, w, h = placement
        output = output[y : y + h, x : x + w]
    size = working_size(reference.shape)
    return to_work(reference, size), to_work(output, size)


class DriftSummary(TypedDict):
    """:meth:`DriftReport.summary`: the grid figures are always there, the other two only when measured."""

    grid_delta_e_mean: float
    grid_delta_e_p95: float
    grid_delta_e_max: float
    shadow_chroma_retention: float | None
    ssim_outside: float | None


@dataclass
class DriftReport:
    grid_delta_e: np.ndarray  # (GRID, GRID)
    shadow_chroma_retention: float | None
    ssim_outside: float | None

    def summary(self) -> DriftSummary:
        g = self.grid_delta_e
        return {
            "grid_delta_e_mean": round(float(g.mean()), 4),
            "grid_delta_e_p95": round(float(np.percentile(g, 95)), 4),
            "grid_delta_e_max": round(float(g.max()), 4),
            "shadow_chroma_retention": None
            if self.shadow_chroma_retention is None
            else round(self.shadow_chroma_retention, 4),
            "ssim_outside": None if self.ssim_outside is None else round(self.ssim_outside, 4),
        }


def _cell_means(lab: np.ndarray) -> np.ndarray:
    return cv2.resize(lab.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA).astype(np.float64)


def measure(reference: np.ndarray, output: np.ndarray, allowed: np.ndarray | None = None) -> DriftReport:
    """Drift of ``output`` against ``reference`` (same size; see :func:`align`).

    ``allowed`` (bool, same size) marks where the stage was allowed to change the picture: those
    pixels count as unchanged in the grid and are excluded from SSIM, so a fix inside its mask is not
    reported as drift.
    """
    if reference.shape != output.shape:
        raise ValueError(f"align the images first: {reference.shape} vs {output.shape}")
    if allowed is not None:
        output = np.where(allowed[..., None], reference, output)
    lab_in, lab_out = srgb_to_lab(reference), srgb_to_lab(output)
    grid = delta_e00(_cell_means(lab_in), _cell_means(lab_out))
    chroma_in = np.hypot(lab_in[..., 1], lab_in[..., 2])
    shadows = (lab_in[..., 0] < SHADOW_L) & (chroma_in > SHADOW_C)
    retention = None
    if shadows.sum() >= 64:
        chroma_out = np.hypot(lab_out[..., 1], lab_out[..., 2])
        retention = float(chroma_out[shadows].mean() / max(chroma_in[shadows].mean(), 1e-6))
    _, ssim_map = structural_similarity(
        lab_in[..., 0], lab_out[..., 0], data_range=100.0, full=True, gaussian_weights=True, sigma=1.5
    )
    keep = np.ones(ssim_map.shape, bool) if allowed is None else ~allowed.astype(bool)
    ssim = float(ssim_map[keep].mean()) if keep.any() else None
    return DriftReport(grid_delta_e=grid, shadow_chroma_retention=retention, ssim_outside=ssim)


def heatmap(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The grid CIEDE2000 as an RGB heatmap (black = 0, bright yellow = HEATMAP_MAX_DE or more)."""
    scaled = np.clip(grid / HEATMAP_MAX_DE * 255.0, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(cv2.resize(scaled, size, interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def bridge(output: np.ndarray, reference: np.ndarray, strength: float = 0.8, sigma_frac: float = 0.01) -> np.ndarray:
    """Pull ``output``'s low-frequency colour toward ``reference`` (same size), keeping its detail.

    In L*a*b*: ``out + strength * (blur(ref) - blur(out))`` with a Gaussian of ``sigma_frac`` times
    the long side, so only large-scale colour (a cast, crushed shadows) moves.
    """
    if output.shape != reference.shape:
        raise ValueError(f"bridge needs aligned images: {output.shape} vs {reference.shape}")
    sigma = max(1.0, sigma_frac * max(output.shape[:2]))
    lab_out = srgb_to_lab(output)
    lab_ref = srgb_to_lab(reference)
    low = cv2.GaussianBlur(lab_ref - lab_out, (0, 0), sigma)
    return lab_to_srgb(lab_out + strength * low)


class FrameConsistency:
    """Motion consistency over decoded frames: frame-to-frame SSIM, flicker, colour drift vs the still.

    * frame-to-frame SSIM of L* at a small working size (mean and min over consecutive pairs);
    * flicker: standard deviation of the second difference of the frames' mean L* (a smooth camera
      move has a smooth brightness curve; flicker shows up as jumps);
    * style drift: CIEDE2000 between each frame's mean L*a*b* and the still's (mean and max).
    """

    SIDE = 256

    def __init__(self, still: np.ndarray) -> None:
        self.still_lab_mean = srgb_to_lab(to_work(still, working_size(still.shape))).reshape(-1, 3).mean(axis=0)
        self._prev: np.ndarray | None = None
        self.ssim: list[float] = []
        self.mean_l: list[float] = []
        self.style: list[float] = []

    def add(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        s = self.SIDE / max(h, w)
        small = cv2.resize(frame, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
        lab = srgb_to_lab(small)
        self.mean_l.append(float(lab[..., 0].mean()))
        self.style.append(float(delta_e00(lab.reshape(-1, 3).mean(axis=0), self.still_lab_mean)))
        if self._prev is not None:
            self.ssim.append(float(structural_similarity(self._prev, lab[..., 0], data_range=100.0)))
        self._prev = lab[..., 0]

    def summary(self) -> dict[str, float]:
        second = np.diff(np.asarray(self.mean_l), n=2) if len(self.mean_l) > 2 else np.zeros(1)
        return {
            "frame_ssim_mean": round(float(np.mean(self.ssim)), 4) if self.ssim else 1.0,
            "frame_ssim_min": round(float(np.min(self.ssim)), 4) if self.ssim else 1.0,
            "flicker": round(float(second.std()), 4),
            "style_drift_mean": round(float(np.mean(self.style)), 4) if self.style else 0.0,
            "style_drift_max": round(float(np.max(self.style)), 4) if self.style else 0.0,
        }
