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


def _luma(image: np.ndarray) -> np.ndarray:
    rgb = image[..., :3].astype(np.float32)
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def image_problems(image: np.ndarray) -> list[str]:
    """Reasons an image must not be passed on (empty list: fine)."""
    y = _luma(image[::4, ::4])
    mean, std = float(y.mean()), float(y.std())
    problems = []
    if mean < BLACK_MEAN:
        problems.append(f"black image (mean luma {mean:.1f})")
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
        self._prev: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        y = _luma(frame[::2, ::2])
        self.means.append(float(y.mean()))
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
        black = [i for i, m in enumerate(self.means) if m < BLACK_MEAN]
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
