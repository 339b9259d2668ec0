"""The asset checks every stage emits with its materialization, and how a stage's figures become check results.

Checks are computed inside the stage (the figures are in its metadata too) and yielded after the output. A
blocking check blocks downstream only at ERROR severity; the WARN checks report without blocking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np

from media_routes.quality import brand
from media_routes.quality.handoff import Handoff

CHECK_NOT_BLANK = "output_not_blank"
CHECK_BRAND = "brand_colours_locked"
CHECK_DRIFT = "handoff_drift"
CHECK_PRODUCT = "product_colours_held"
# name -> (description, blocking)
COMMON_CHECKS: dict[str, tuple[str, bool]] = {
    CHECK_NOT_BLANK: (
        "the output is not black, blank or uniform, and a video has no black or frozen frames (a refused or "
        "failed generation); blocks downstream",
        True,
    ),
    CHECK_BRAND: (
        "every located brand colour's stroke interior (eroded by the anti-aliasing width at the output's size) has "
        "a mean CIEDE2000 within quality.brand_delta_e_max and, on stills whose type the project set, a per-pixel "
        "p95 within quality.brand_p95_max (reported for a provider's output and per frame on video); blocks "
        "downstream",
        True,
    ),
    CHECK_PRODUCT: (
        "every swatch of a protected layer (protect: true) keeps its source asset's colour: region-mean CIEDE2000 "
        "within quality.product_delta_e_max, on every frame of a video; blocks downstream",
        True,
    ),
    CHECK_DRIFT: (
        "hand-off drift against the stage's input within the quality thresholds (grid CIEDE2000, deep-shadow "
        "chroma, SSIM outside the allowed region; frame SSIM and style drift for video); warns",
        False,
    ),
}


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    metadata: dict[str, Any] | None = None

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.name,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=jsonable(self.metadata or {}),
        )


def warn_check(name: str, problems: list[str], ok: str, metadata: dict[str, Any]) -> CheckOutcome:
    """A WARN check that fails with the listed problems (passes with ``ok`` when there are none)."""
    return CheckOutcome(
        name,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or ok,
        metadata=metadata,
    )


def brand_check(
    report: dict[str, dict[str, Any]],
    limit: float,
    *,
    p95_limit: float | None = None,
    p95: float | None = None,
    p95_gated: bool = True,
    frames: int | None = None,
    lost: str = "",
    provider: dict[str, Any] | None = None,
) -> CheckOutcome:
    """Brand colours within ``limit`` where they were measured (``report``: the delivered output): the stroke
    interior's mean, and (``p95_limit``) its per-pixel p95 (``p95``, when given: the worst over a clip's frames;
    ``p95_gated=False`` reports it without failing on it). For a provider's output, ``lost`` names the brand
    regions (or frames) not found in the provider's own pixels, and ``provider`` holds what its pixels measured
    before any correction: the check fails on a lost region, so a restored colour can never stand in for a brand
    the provider did not make."""
    worst = brand.worst(report)
    worst_p95 = brand.worst_p95(report) if p95 is None else p95
    where = f" over {frames} frames" if frames else ""
    p95_text = ""
    if p95_limit is not None:
        p95_text = f", p95 {worst_p95:.2f} " + (
            f"(limit {p95_limit})"
            if p95_gated
            else f"(reported, not gated: a provider's or a video frame's pixels; {p95_limit} on the project's own type)"
        )
    described = (
        f"worst brand colour stroke-interior CIEDE2000{where}: mean {worst:.2f} (limit {limit}){p95_text}"
        if report
        else "no brand colour regions located"
    )
    metadata: dict[str, Any] = {"worst_delta_e": worst, "limit": limit, "colours": report}
    if p95_limit is not None:
        metadata |= {"worst_p95": worst_p95, "p95_limit": p95_limit, "p95_gated": p95_gated}
    if provider is not None:
        metadata["provider_pixels"] = provider
    if lost:
        metadata["lost"] = lost
    within = worst <= limit and (p95_limit is None or not p95_gated or worst_p95 <= p95_limit)
    return CheckOutcome(
        CHECK_BRAND,
        passed=within and not lost,
        description=f"{lost}; {described}" if lost else described,
        metadata=metadata,
    )


def product_check(
    report: dict[str, dict[str, Any]], limit: float, *, frames: int | None = None, worst: float | None = None
) -> CheckOutcome:
    """Protected product colours within ``limit`` (``report``: the swatches of the delivered output; ``worst``, when
    given, the worst region mean over a clip's frames)."""
    if not report and worst is None:
        return CheckOutcome(CHECK_PRODUCT, passed=True, description="no protected layer (protect: true) in the frame")
    value = brand.worst(report) if worst is None else worst
    where = f" over {frames} frames" if frames else ""
    swatch = max(report, key=lambda k: brand.worst({k: report[k]}), default="")
    return CheckOutcome(
        CHECK_PRODUCT,
        passed=value <= limit,
        description=f"worst product swatch region-mean CIEDE2000 from its source colour{where}: {value:.2f} "
        f"(limit {limit}){f'; {swatch}' if swatch else ''}",
        metadata={"worst_delta_e": value, "limit": limit, "swatches": report},
    )


def handoff_check(handoff: Handoff) -> CheckOutcome:
    return warn_check(CHECK_DRIFT, handoff.problems, "hand-off drift within thresholds", handoff.summary)


def not_blank_check(problems: list[str]) -> CheckOutcome:
    return CheckOutcome(
        CHECK_NOT_BLANK,
        passed=not problems,
        description="; ".join(problems) or "output has content",
        metadata={"problems": problems},
    )


def jsonable(value: Any) -> Any:
    """Metadata-safe: numpy scalars to Python, tuples to lists, keys to strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
