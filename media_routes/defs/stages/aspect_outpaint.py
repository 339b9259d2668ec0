"""Stage 5 asset: expand the canvas to each delivery format without touching the original pixels."""

import time

import dagster as dg

from media_routes.defs.partitions import campaign_x_format_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.common import (
    GROUP,
    OWNERS,
    StageConfig,
    decide_route,
    effective_seed,
    load_image,
    media_prefix,
    partition_parts,
    stage_output,
    store_image,
)
from media_routes.engine.aspect_outpaint import outpaint
from media_routes.formats import get_format
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@dg.asset(
    group_name=GROUP,
    partitions_def=campaign_x_format_partitions,
    code_version=CODE_VERSION,
    owners=OWNERS,
    kinds={"python", "opencv"},
    description=(
        "Stage 5 (per campaign x format): expands the upscaled master's canvas to the format's aspect, keeps "
        "the original pixels exactly where the spec places them, fills the new area (reflection and "
        "distance-graded blur with matched grain) without a visible seam, then resizes to the format's "
        "still delivery size. The full-resolution canvas is kept as a layer."
    ),
)
def aspect_outpaint(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    k_upscale: MediaRef,
) -> dg.Output[MediaRef]:
    started = time.perf_counter()
    campaign_id, format_key = partition_parts(context)
    assert format_key is not None
    campaign = campaigns.load(campaign_id)
    fmt = get_format(format_key)
    route = decide_route(campaign, "aspect_outpaint", CODE_VERSION)
    seed, seed_source = effective_seed(config, campaign)
    k_level = str(k_upscale.info.get("k_level", campaign.spec.upscale.target))
    source = load_image(media_store, k_upscale.uri)
    mask_uri = k_upscale.layers.get("subject_mask")
    mask = load_image(media_store, mask_uri) if mask_uri else None
    result = outpaint(
        source,
        fmt.aspect,
        fmt.still_size(k_level),
        anchor=campaign.spec.outpaint.anchor,
        seed=seed,
        subject_mask=mask,
    )
    prefix = media_prefix("aspect_outpaint", context.partition_key)
    canvas_uri, canvas_sha = store_image(media_store, result.canvas, prefix=f"{prefix}/layers")
    layers = {"canvas": canvas_uri}
    if result.subject_mask is not None:
        layers["subject_mask"], _ = store_image(media_store, result.subject_mask, prefix=f"{prefix}/layers")
    uri, sha = store_image(media_store, result.delivery, prefix=prefix)
    h, w = result.delivery.shape[:2]
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
        info={"format": fmt.key, "k_level": k_level, "placement": list(result.placement)},
    )
    return stage_output(
        ref=ref,
        store=media_store,
        route=route,
        seed=seed,
        seed_source=seed_source,
        inputs={"k_upscale": k_upscale.sha256},
        preview=result.delivery,
        metrics={
            "format": fmt.key,
            "placement": list(result.placement),
            "canvas_hash": canvas_sha,
            **result.metrics,
        },
        started=started,
        extra={"format": fmt.key, "delivery_size": f"{w}x{h}"},
    )
