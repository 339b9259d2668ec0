"""Stage 3 asset: surgical, non-destructive fixes inside masks; nothing outside the mask changes."""

import time

import dagster as dg
import numpy as np

from media_routes.defs.partitions import campaign_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.common import (
    GROUP,
    OWNERS,
    StageConfig,
    decide_route,
    effective_seed,
    load_image,
    media_prefix,
    stage_output,
    store_image,
)
from media_routes.engine.inpaint_fix import apply_fixes
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@dg.asset(
    group_name=GROUP,
    partitions_def=campaign_partitions,
    code_version=CODE_VERSION,
    owners=OWNERS,
    kinds={"python", "opencv"},
    description=(
        "Stage 3: applies the spec's fixes inside their masks: 'remove' = OpenCV inpainting with matched "
        "grain, 'replace' = a provided patch (e.g. a corrected logo) with Poisson blending of the cleared "
        "area. Pixels outside the feathered masks are byte-identical to the input. Each fix is stored as "
        "its own layer (alpha + fixed pixels) so it can be inspected and undone."
    ),
)
def inpaint_fix(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    lighting_iteration: MediaRef,
) -> dg.Output[MediaRef]:
    started = time.perf_counter()
    campaign = campaigns.load(context.partition_key)
    route = decide_route(campaign, "inpaint_fix", CODE_VERSION)
    seed, seed_source = effective_seed(config, campaign)
    source = load_image(media_store, lighting_iteration.uri)
    result = apply_fixes(source, campaign, seed=seed)
    prefix = media_prefix("inpaint_fix", context.partition_key)
    layers = dict(lighting_iteration.layers)
    fixes_meta = []
    for layer in result.layers:
        rgba_uri, _ = store_image(media_store, layer.rgba, prefix=f"{prefix}/layers")
        layers[f"fix:{layer.name}"] = rgba_uri
        fixes_meta.append({"name": layer.name, "action": layer.action, "layer": rgba_uri, **layer.metrics})
        context.log.info(f"fix {layer.name!r} ({layer.action}): {layer.metrics}")
    unchanged = result.changed_mask == 0 if result.changed_mask is not None else np.ones(source.shape[:2], bool)
    outside_identical = bool(np.array_equal(result.image[unchanged], source[unchanged]))
    if not outside_identical:  # the engine guarantees this; refuse to pass on a violation
        raise dg.Failure(description="inpaint_fix changed pixels outside its masks", allow_retries=False)
    uri, sha = store_image(media_store, result.image, prefix=prefix)
    h, w = result.image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers=layers)
    if not result.layers:
        context.log.info("no fixes in the spec: output equals input")
    return stage_output(
        ref=ref,
        store=media_store,
        route=route,
        seed=seed,
        seed_source=seed_source,
        inputs={"lighting_iteration": lighting_iteration.sha256},
        preview=result.image,
        metrics={
            "fixes": fixes_meta,
            "changed_px": int((~unchanged).sum()),
            "outside_mask_identical": outside_identical,
        },
        started=started,
        extra={"fix_count": len(result.layers), "outside_mask_identical": outside_identical},
    )
