"""Stage 2 asset: measure lighting against the brief's targets and iterate until it is locked."""

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
    load_image,
    media_prefix,
    stage_output,
    store_image,
)
from media_routes.engine.lighting_iteration import iterate
from media_routes.lib.media import MediaRef

CODE_VERSION = "1"


@dg.asset(
    group_name=GROUP,
    partitions_def=campaign_partitions,
    code_version=CODE_VERSION,
    owners=OWNERS,
    kinds={"python", "numpy"},
    description=(
        "Stage 2: measures exposure (median L*, percentiles, clipping), white balance (CCT of near-neutral "
        "pixels) and contrast (L* p5-p95 spread), corrects toward the spec's lighting targets and repeats "
        "until every measure is within tolerance or max_iterations is reached. At least one iteration "
        "runs; every iteration's measurements are in the metadata."
    ),
)
def lighting_iteration(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    base_composition: MediaRef,
) -> dg.Output[MediaRef]:
    started = time.perf_counter()
    campaign = campaigns.load(context.partition_key)
    route = decide_route(campaign, "lighting_iteration", CODE_VERSION)
    seed, seed_source = effective_seed(config, campaign)  # the local engine is deterministic: seed unused
    targets = campaign.spec.lighting
    result = iterate(load_image(media_store, base_composition.uri), targets)
    for row in result.iterations:
        context.log.info(
            f"iteration {row['iteration']}: exposure {row['after_exposure']:.1f}/{targets.exposure}, "
            f"WB {row['after_white_balance_k']:.0f}K/{targets.white_balance_k:.0f}K, "
            f"contrast {row['after_contrast']:.1f}/{targets.contrast}"
        )
    if not result.locked:
        context.log.warning(f"lighting not locked after {len(result.iterations)} iterations; passing best effort")
    uri, sha = store_image(media_store, result.image, prefix=media_prefix("lighting_iteration", context.partition_key))
    h, w = result.image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers=dict(base_composition.layers))
    final = result.final.as_dict() if result.final else {}
    return stage_output(
        ref=ref,
        store=media_store,
        route=route,
        seed=seed,
        seed_source=seed_source,
        inputs={"base_composition": base_composition.sha256},
        preview=result.image,
        metrics={
            "locked": result.locked,
            "iterations": len(result.iterations),
            "final": final,
            "targets": targets.model_dump(),
        },
        started=started,
        extra={
            "locked": result.locked,
            "iteration_count": len(result.iterations),
            "iterations": dg.MetadataValue.table(
                records=[dg.TableRecord(row) for row in result.iterations],
                schema=dg.TableSchema(columns=[dg.TableColumn(k, "float") for k in result.iterations[0]]),
            ),
        },
    )
