"""Stage 2 asset: measure lighting against the brief's targets and iterate until it is locked."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.declare import StageConfig, stage_asset
from media_routes.defs.stages.stage_io import begin_stage
from media_routes.engine.lighting_iteration import LightingResult, iterate
from media_routes.hosted.common import HostedStage
from media_routes.hosted.lighting_iteration import relight_hosted
from media_routes.lib.media import MediaRef
from media_routes.stages import LIGHTING_ITERATION

CODE_VERSION = "1"


@stage_asset(
    LIGHTING_ITERATION,
    code_version=CODE_VERSION,
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
    providers: ProviderHub,
    base_composition: MediaRef,
) -> Iterator[Any]:
    run = begin_stage(context, LIGHTING_ITERATION, CODE_VERSION, config, campaigns, media_store, providers)
    targets = run.campaign.spec.lighting
    base_img = run.load(base_composition.uri)
    hosted_info: dict[str, Any] = {}

    def relight(hosted: HostedStage) -> LightingResult:
        result, info = relight_hosted(hosted, base_img, targets)
        hosted_info.update(info)
        return result

    routed = run.router.run(lambda: iterate(base_img, targets), relight)  # local: deterministic, no seed
    result = routed.value
    for row in result.iterations:
        context.log.info(
            f"iteration {row['iteration']}: exposure {row['after_exposure']:.1f}/{targets.exposure}, "
            f"WB {row['after_white_balance_k']:.0f}K/{targets.white_balance_k:.0f}K, "
            f"contrast {row['after_contrast']:.1f}/{targets.contrast}"
        )
    if not result.locked:
        context.log.warning(f"lighting not locked after {len(result.iterations)} iterations; passing best effort")
    labels = run.load_layer(base_composition, "brand_labels")
    locked = run.lock_brand(result.image, labels, hosted=routed.hosted)
    image, report = locked.image, locked.after
    handoff = run.handoff(base_img, image, upstream=base_composition, grade=True)
    uri, sha = run.save(image)
    h, w = image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers=dict(base_composition.layers))
    yield from run.output(
        ref,
        route=routed.decision,
        inputs={"base_composition": base_composition.sha256},
        preview=image,
        checks=run.colour_checks(report, lock=locked, p95_gated=run.type_is_ours(ref.layers, locked)),
        blank_problems=locked.problems,
        drift_check=handoff.check,
        metrics={
            "drift": handoff.summary,
            **run.colour_metrics(report, locked.before),
            "locked": result.locked,
            "iterations": len(result.iterations),
            "final": result.final.as_dict() if result.final else {},
            "targets": targets.model_dump(),
            **({"hosted": hosted_info} if hosted_info else {}),
        },
        extra={
            **handoff.extra,
            "locked": result.locked,
            "iteration_count": len(result.iterations),
            "iterations": dg.MetadataValue.table(
                records=[dg.TableRecord(row) for row in result.iterations],
                schema=dg.TableSchema(columns=[dg.TableColumn(k, "float") for k in result.iterations[0]]),
            ),
        },
    )
