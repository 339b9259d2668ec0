"""Stage 1 asset: the campaign's blueprint image (layout, subjects, exact headline) at 1K."""

import time

import dagster as dg

from media_routes.defs.partitions import campaign_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.common import (
    GROUP,
    OWNERS,
    StageConfig,
    decide_route,
    effective_seed,
    media_prefix,
    stage_output,
    store_image,
)
from media_routes.engine.base_composition import compose
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@dg.asset(
    group_name=GROUP,
    partitions_def=campaign_partitions,
    code_version=CODE_VERSION,
    owners=OWNERS,
    kinds={"python", "pillow", "opencv"},
    description=(
        "Stage 1: the blueprint still at 1K (1024 px long side): palette background with seeded texture, "
        "subject cutouts placed per layout with soft shadows from the key light, and the exact headline "
        "in the brand font. Local engine: a layered compositor (hosted route later: Nano Banana Pro)."
    ),
)
def base_composition(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
) -> dg.Output[MediaRef]:
    started = time.perf_counter()
    campaign = campaigns.load(context.partition_key)
    route = decide_route(campaign, "base_composition", CODE_VERSION)
    seed, seed_source = effective_seed(config, campaign)
    result = compose(campaign, seed=seed)
    prefix = media_prefix("base_composition", context.partition_key)
    uri, sha = store_image(media_store, result.image, prefix=prefix)
    mask_uri, _ = store_image(media_store, result.subject_mask, prefix=f"{prefix}/layers")
    h, w = result.image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers={"subject_mask": mask_uri})
    context.log.info(f"{campaign.id}: composed {w}x{h}, {len(campaign.spec.scene.layers)} layers, seed {seed}")
    return stage_output(
        ref=ref,
        store=media_store,
        route=route,
        seed=seed,
        seed_source=seed_source,
        inputs={"spec": campaign.digest()},
        preview=result.image,
        metrics=result.metrics,
        started=started,
    )
