"""Stage 5 asset: expand the canvas to each delivery format without touching the original pixels."""

import dagster as dg

from media_routes.defs.partitions import campaign_x_format_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.common import StageConfig, begin_stage, stage_asset
from media_routes.engine.aspect_outpaint import outpaint
from media_routes.formats import get_format
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@stage_asset(
    partitions_def=campaign_x_format_partitions,
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
    k_upscale: MediaRef,
) -> dg.Output[MediaRef]:
    run = begin_stage(context, "aspect_outpaint", CODE_VERSION, config, campaigns, media_store)
    fmt = get_format(str(run.format_key))
    k_level = str(k_upscale.info.get("k_level", run.campaign.spec.upscale.target))
    result = outpaint(
        run.load(k_upscale.uri),
        fmt.aspect,
        fmt.still_size(k_level),
        anchor=run.campaign.spec.outpaint.anchor,
        seed=run.seed,
        subject_mask=run.load_layer(k_upscale, "subject_mask"),
    )
    canvas_uri, canvas_sha = run.save(result.canvas, layer=True)
    layers = {"canvas": canvas_uri}
    if result.subject_mask is not None:
        layers["subject_mask"], _ = run.save(result.subject_mask, layer=True)
    uri, sha = run.save(result.delivery)
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
    return run.output(
        ref,
        inputs={"k_upscale": k_upscale.sha256},
        preview=result.delivery,
        metrics={"format": fmt.key, "placement": list(result.placement), "canvas_hash": canvas_sha, **result.metrics},
        extra={"format": fmt.key, "delivery_size": f"{w}x{h}"},
    )
