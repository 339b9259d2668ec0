"""Stage 1 asset: the campaign's blueprint image (layout, subjects, exact headline) at 1K."""

import dagster as dg

from media_routes.defs.partitions import campaign_partitions
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.common import StageConfig, begin_stage, stage_asset
from media_routes.engine.base_composition import compose
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@stage_asset(
    partitions_def=campaign_partitions,
    code_version=CODE_VERSION,
    kinds={"python", "pillow", "opencv"},
    description=(
        "Stage 1: the blueprint still at 1K (1024 px long side): palette background with seeded texture, "
        "subject cutouts placed per layout with soft shadows from the key light, and the exact headline "
        "in the brand font. Local engine: a layered compositor (hosted route later: Nano Banana Pro)."
    ),
)
def base_composition(
    context: dg.AssetExecutionContext, config: StageConfig, campaigns: CampaignCatalog, media_store: MediaStore
) -> dg.Output[MediaRef]:
    run = begin_stage(context, "base_composition", CODE_VERSION, config, campaigns, media_store)
    result = compose(run.campaign, seed=run.seed)
    uri, sha = run.save(result.image)
    mask_uri, _ = run.save(result.subject_mask, layer=True)
    h, w = result.image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers={"subject_mask": mask_uri})
    context.log.info(f"{run.campaign.id}: composed {w}x{h}, {len(run.campaign.spec.scene.layers)} layers")
    return run.output(ref, inputs={"spec": run.campaign.digest()}, preview=result.image, metrics=result.metrics)
