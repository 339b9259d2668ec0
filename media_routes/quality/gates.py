"""Never pass a bad output on: blank, uniform or black images; black or frozen video frames.

These catch what a refused or failed generation typically returns (a black or flat image, a clip
that stops moving) before the next stage spends anything on it.
"""

from __future__ import annotations

import numpy as np

BLACK_MEAN = 4.0  # mean 8-bit luma below this: a black image / frame
WHITE_MEAN = 251.5  # above this: blank white
UNIFORM_STD = 1.5  # luma standard deviation below this: a flat, uniform image
FROZEN_DIFF = 0.02  # mean absolute difference between frames below this: no motion
FROZEN_SECONDS = 1.0  # a still stretch this long in a camera move means a frozen clip
# A frame that is black except for a little text or a logo (a failed render under an intact headline layer:
# a NaN light direction gave 97.6% of pixels at luma 0 and a mean of 4.6, above BLACK_MEAN). The example
# campaigns have 0% of pixels this dark, the noir one included (its shadows sit at luma 8-20).
PURE_BLACK_LUMA = 2.0
BLACK_FRACTION = 0.95


def _luma(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(np.float32)
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def image_problems(image: np.ndarray) -> list[str]:
    """Reasons an image must not be passed on (empty list: fine)."""
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).any(axis=-1).sum()) if image.ndim == 3 else int((~np.isfinite(image)).sum())
        return [f"{bad} pixel(s) are not finite numbers (NaN or infinity): nothing valid rendered"]
    y = _luma(image[::4, ::4])
    mean, std = float(y.mean()), float(y.std())
    black = float((y < PURE_BLACK_LUMA).mean())
    problems = []
    if mean < BLACK_MEAN:
        problems.append(f"black image (mean luma {mean:.1f})")
    elif black >= BLACK_FRACTION:
        problems.append(f"black image: {black:.1%} of the pixels are black (luma < {PURE_BLACK_LUMA:g})")
    elif mean > WHITE_MEAN:
        problems.append(f"blank white image (mean luma {mean:.1f})")
    if std < UNIFORM_STD:
        problems.append(f"uniform image (luma std {std:.2f}): nothing rendered")
    return problems


class FrameStats:
    """Accumulates per-frame figures while a video is decoded; see :meth:`problems`."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.means: list[float] = []
        self.diffs: list[float] = []
        self.black: list[int] = []  # indices of black frames (mean below BLACK_MEAN, or BLACK_FRACTION black)
        self._prev: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        y = _luma(frame[::2, ::2])
        mean = float(y.mean())
        if mean < BLACK_MEAN or (y < PURE_BLACK_LUMA).mean() >= BLACK_FRACTION:
            self.black.append(len(self.means))
        self.means.append(mean)
        if self._prev is not None:
            self.diffs.append(float(np.abs(y - self._prev).mean()))
        self._prev = y

    def longest_still_run(self) -> int:
        best = run = 0
        for d in self.diffs:
            run = run + 1 if d < FROZEN_DIFF else 0
            best = max(best, run)
        return best

    def problems(self) -> list[str]:
        out = []
        black = self.black
        if black:
            out.append(f"{len(black)} black frame(s), first at frame {black[0] + 1}")
        still = self.longest_still_run()
        if self.diffs and still >= max(2, int(self.fps * FROZEN_SECONDS)):
            out.append(f"frozen: {still + 1} consecutive identical frames")
        return out

    def summary(self) -> dict[str, float]:
        return {
            "frames_checked": len(self.means),
            "min_frame_luma": round(min(self.means), 2) if self.means else 0.0,
            "longest_still_run": self.longest_still_run(),
            "mean_frame_diff": round(float(np.mean(self.diffs)), 4) if self.diffs else 0.0,
        }
