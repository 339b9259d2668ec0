"""What one stage hands the next: hand-off drift against its input and the bridge pass (pure, no Dagster).

``measure_handoff`` measures an output against the stage's input (and the base composition), lists the problems
against the spec's quality thresholds and returns the drift heatmap; ``bridge_if_drifted`` applies the
low-strength realignment toward the input where drift exceeds the tolerance. The stage assets store the heatmap
and turn the problems into the WARN check ``handoff_drift`` (media_routes/defs/stages/checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from media_routes.quality import drift, gates
from media_routes.spec import Quality


@dataclass(frozen=True)
class Handoff:
    summary: dict[str, Any]  # {"vs_input": ..., "vs_base": ...} as drift.DriftReport.summary()
    problems: list[str]  # empty: within the thresholds
    heatmap: np.ndarray  # grid CIEDE2000 against the input, as an RGB image of the input's working size


def measure_handoff(
    reference: np.ndarray,
    output: np.ndarray,
    quality: Quality,
    *,
    base: np.ndarray | None = None,
    placement: tuple[int, int, int, int] | None = None,
    allowed: np.ndarray | None = None,
    grade: bool = False,
) -> Handoff:
    """Drift of ``output`` against the stage input ``reference`` (and ``base``, the base composition).

    ``placement`` locates the input inside ``output`` (outpaint); ``allowed`` marks where the stage may change
    pixels (not counted); ``grade`` says a global tone and colour change is the stage's purpose (lighting): grid
    drift and SSIM are reported but only deep-shadow chroma is gated.
    """
    ref_w, out_w = drift.align(reference, output, placement)
    allowed_w = None
    if allowed is not None:
        allowed_w = cv2.resize(allowed.astype(np.uint8), ref_w.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    vs_input = drift.measure(ref_w, out_w, allowed_w)
    summary: dict[str, Any] = {"vs_input": vs_input.summary()}
    if base is not None:
        summary["vs_base"] = drift.measure(*drift.align(base, output, placement)).summary()
    s = summary["vs_input"]
    problems = []
    if not grade and s["grid_delta_e_max"] > quality.drift_delta_e_warn:
        problems.append(f"grid CIEDE2000 max {s['grid_delta_e_max']:.1f} > {quality.drift_delta_e_warn}")
    if s["shadow_chroma_retention"] is not None and s["shadow_chroma_retention"] < quality.shadow_chroma_min:
        problems.append(f"deep-shadow chroma kept {s['shadow_chroma_retention']:.2f} < {quality.shadow_chroma_min}")
    if not grade and s["ssim_outside"] is not None and s["ssim_outside"] < quality.ssim_outside_min:
        problems.append(f"SSIM outside the allowed region {s['ssim_outside']:.3f} < {quality.ssim_outside_min}")
    return Handoff(summary, problems, drift.heatmap(vs_input.grid_delta_e, ref_w.shape[1::-1]))


@dataclass(frozen=True)
class Bridge:
    image: np.ndarray  # the output, bridged or as it was
    info: dict[str, Any] = field(default_factory=dict)  # enabled / applied / skipped, before and after
    message: str | None = None  # a warning for the run log when the bridge was applied

    @property
    def applied(self) -> bool:
        return bool(self.info.get("applied"))


def bridge_if_drifted(
    stage: str,
    output: np.ndarray,
    reference: np.ndarray,
    quality: Quality,
    box: tuple[int, int, int, int] | None = None,
) -> Bridge:
    """Low-strength realignment toward ``reference`` when drift exceeds the tolerance.

    ``reference`` is the stage input brought to the geometry of ``output[box]`` (whole image if no box). Only
    in the spec's ``quality.bridge_stages``; a black, blank or uniform output is left as it is (it must fail its
    gate, not be repainted).
    """
    if stage not in quality.bridge_stages:
        return Bridge(output, {"enabled": False})
    if gates.image_problems(output):
        return Bridge(output, {"enabled": True, "applied": False, "skipped": "output failed the blank gate"})
    x, y, w, h = box or (0, 0, output.shape[1], output.shape[0])
    region = output[y : y + h, x : x + w]
    before = drift.measure(*drift.align(reference, region)).summary()
    retention = before["shadow_chroma_retention"]
    drifted = before["grid_delta_e_max"] > quality.drift_delta_e_warn or (
        retention is not None and retention < quality.shadow_chroma_min
    )
    if not drifted:
        return Bridge(output, {"enabled": True, "applied": False, "before": before})
    bridged = output.copy()
    fixed, after = region, before
    for _ in range(2):  # a second pass only when it still helps
        candidate = drift.bridge(fixed, reference, strength=quality.bridge_strength)
        measured = drift.measure(*drift.align(reference, candidate)).summary()
        if measured["grid_delta_e_max"] >= after["grid_delta_e_max"] and fixed is not region:
            break
        fixed, after = candidate, measured
        if after["grid_delta_e_max"] <= quality.drift_delta_e_warn:
            break
    bridged[y : y + h, x : x + w] = fixed
    message = (
        f"{stage}: drift over tolerance (grid max {before['grid_delta_e_max']:.1f}, shadow chroma "
        f"{retention}); bridge pass -> grid max {after['grid_delta_e_max']:.1f}, "
        f"shadow chroma {after['shadow_chroma_retention']}"
    )
    return Bridge(bridged, {"enabled": True, "applied": True, "before": before, "after": after}, message)
