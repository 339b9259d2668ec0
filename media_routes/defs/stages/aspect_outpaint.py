"""Stage 5 asset: expand the canvas to each delivery format without touching the original pixels."""

from collections.abc import Iterator
from typing import Any

import cv2
import dagster as dg
import numpy as np

from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.checks import CheckOutcome
from media_routes.defs.stages.declare import StageConfig, stage_asset
from media_routes.defs.stages.stage_io import begin_stage
from media_routes.engine.aspect_outpaint import outpaint
from media_routes.formats import get_format
from media_routes.hosted.aspect_outpaint import outpaint_hosted
from media_routes.lib.media import MediaRef
from media_routes.quality import brand
from media_routes.stages import ASPECT_OUTPAINT

CODE_VERSION = "1"
CHECK_ORIGINAL = "original_pixels_preserved"
CHECK_SEAM = "outpaint_seam"


@stage_asset(
    ASPECT_OUTPAINT,
    extra_checks={
        CHECK_ORIGINAL: ("the upscaled master sits on the expanded canvas pixel for pixel; blocks", True),
        CHECK_SEAM: (
            "colour (CIEDE2000 between strips) and luma step across the seam between original and fill within "
            "quality.seam_delta_e_warn and quality.seam_gradient_ratio_warn",
            False,
        ),
    },
    code_version=CODE_VERSION,
    kinds={"python", "opencv"},
    description=(
        "Stage 5 (per campaign x format): expands the upscaled master's canvas to the format's aspect, keeps "
        "the original pixels exactly where the spec places them, fills the new area (edge stretch with "
        "distance-graded blur, a short reflection, matched grain; foreground is never mirrored) without a "
        "visible seam, then resizes to the format's still delivery size. The full canvas is kept as a layer."
    ),
)
def aspect_outpaint(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    providers: ProviderHub,
    k_upscale: MediaRef,
) -> Iterator[Any]:
    run = begin_stage(context, ASPECT_OUTPAINT, CODE_VERSION, config, campaigns, media_store, providers)
    fmt = get_format(str(run.format_key))
    k_level = str(k_upscale.info.get("k_level", run.campaign.spec.upscale.target))
    source = run.load(k_upscale.uri)
    anchor = run.campaign.spec.outpaint.anchor
    subject_mask = run.load_layer(k_upscale, "subject_mask")
    size = fmt.still_size(k_level)
    routed = run.router.run(
        lambda: outpaint(source, fmt.aspect, size, anchor=anchor, seed=run.seed, subject_mask=subject_mask),
        lambda hosted: outpaint_hosted(hosted, source, fmt, size, anchor=anchor, subject_mask=subject_mask),
    )
    result = routed.value
    seam = float(result.metrics.get("seam_delta_e", 0.0))
    seam_limit = run.campaign.spec.quality.seam_delta_e_warn
    seam_grad = float(result.metrics.get("seam_gradient_ratio", 1.0))
    grad_limit = run.campaign.spec.quality.seam_gradient_ratio_warn
    canvas_uri, canvas_sha = run.save(result.canvas, layer=True)
    layers = {**run.carried(k_upscale), "canvas": canvas_uri}
    if result.subject_mask is not None:
        layers["subject_mask"], _ = run.save(result.subject_mask, layer=True)
    x, y, pw, ph = result.placement
    original_kept = bool(np.array_equal(result.canvas[y : y + ph, x : x + pw], source))
    h, w = result.delivery.shape[:2]
    # where the original sits in the delivered still
    sc = w / result.canvas.shape[1]
    box = (round(x * sc), round(y * sc), max(1, round(pw * sc)), max(1, round(ph * sc)))
    bridged = run.bridge(result.delivery, cv2.resize(source, box[2:], interpolation=cv2.INTER_AREA), box)
    labels = run.load_layer(k_upscale, "brand_labels")
    if labels is not None:
        placed = np.zeros(result.canvas.shape[:2], np.uint8)
        placed[y : y + ph, x : x + pw] = labels
        labels = brand.resize_labels(placed, (w, h))
        layers["brand_labels"], _ = run.save(labels, layer=True)
    content_scale = box[2] / run.campaign.spec.scene.canvas_size[0]  # the authored canvas's size in the delivery
    locked = run.lock_brand(bridged.image, labels, hosted=routed.hosted, scale=content_scale)
    delivery, report = locked.image, locked.after
    handoff = run.handoff(source, delivery, upstream=k_upscale, placement=box)
    uri, sha = run.save(delivery)
    context.log.info(
        f"{fmt.key}: canvas {result.canvas.shape[1]}x{result.canvas.shape[0]}, original at {result.placement}, "
        f"delivered {w}x{h}"
    )
    ref = MediaRef(
        uri=uri,
        sha256=sha,
        kind="image",
        width=w,
        height=h,
        layers=layers,
        info={
            "format": fmt.key,
            "k_level": k_level,
            "placement": list(result.placement),
            "content_scale": round(content_scale, 4),
        },
    )
    yield from run.output(
        ref,
        route=routed.decision,
        inputs={"k_upscale": k_upscale.sha256},
        preview=delivery,
        blank_problems=locked.problems,
        checks=[
            CheckOutcome(
                CHECK_ORIGINAL,
                passed=original_kept,
                description=f"original {pw}x{ph} pixels at ({x}, {y}) on the canvas are "
                + ("unchanged" if original_kept else "CHANGED"),
            ),
            *run.colour_checks(report, lock=locked, p95_gated=run.type_is_ours(k_upscale.layers, locked)),
            CheckOutcome(
                CHECK_SEAM,
                passed=seam <= seam_limit and seam_grad <= grad_limit,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"seam CIEDE2000 {seam:.2f} (limit {seam_limit}), luma step {seam_grad:.2f}x the "
                f"original's texture (limit {grad_limit})",
                metadata={"seam_delta_e": seam, "seam_gradient_ratio": seam_grad},
            ),
        ],
        metrics={
            "original_pixels_preserved": original_kept,
            **run.colour_metrics(report, locked.before),
            "drift": handoff.summary,
            "bridge": bridged.info,
            "format": fmt.key,
            "placement": list(result.placement),
            "canvas_hash": canvas_sha,
            **result.metrics,
        },
        drift_check=handoff.check,
        extra={"format": fmt.key, "delivery_size": f"{w}x{h}", **handoff.extra},
    )
