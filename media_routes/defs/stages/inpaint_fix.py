"""Stage 3 asset: surgical, non-destructive fixes inside masks; nothing outside the mask changes."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np

from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.checks import CheckOutcome
from media_routes.defs.stages.declare import StageConfig, stage_asset
from media_routes.defs.stages.stage_io import begin_stage
from media_routes.engine.inpaint_fix import apply_fixes
from media_routes.hosted.inpaint_fix import fix_hosted
from media_routes.lib.media import MediaRef
from media_routes.quality import brand
from media_routes.stages import INPAINT_FIX

CODE_VERSION = "1"
CHECK_OUTSIDE_MASK = "outside_mask_unchanged"


@stage_asset(
    INPAINT_FIX,
    extra_checks={
        CHECK_OUTSIDE_MASK: ("no pixel outside the feathered fix masks changed (byte-identical); blocks", True)
    },
    code_version=CODE_VERSION,
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
    providers: ProviderHub,
    lighting_iteration: MediaRef,
) -> Iterator[Any]:
    run = begin_stage(context, INPAINT_FIX, CODE_VERSION, config, campaigns, media_store, providers)
    source = run.load(lighting_iteration.uri)
    routed = run.router.run(
        lambda: apply_fixes(source, run.campaign, seed=run.seed), lambda hosted: fix_hosted(hosted, source)
    )
    result = routed.value
    layers = dict(lighting_iteration.layers)
    fixes_meta = []
    for layer in result.layers:
        layer_uri, _ = run.save(layer.rgba, layer=True)
        layers[f"fix:{layer.name}"] = layer_uri
        fixes_meta.append({"name": layer.name, "action": layer.action, "layer": layer_uri, **layer.metrics})
        context.log.info(f"fix {layer.name!r} ({layer.action}): {layer.metrics}")
    if not result.layers:
        context.log.info("no fixes in the spec: output equals input")
    unchanged = result.changed_mask == 0 if result.changed_mask is not None else np.ones(source.shape[:2], bool)
    outside_identical = bool(np.array_equal(result.image[unchanged], source[unchanged]))
    # a replaced patch (a corrected logo) is authored in exact brand colours: add it to the brand map
    labels = run.load_layer(lighting_iteration, "brand_labels")
    if labels is not None:
        labels = labels.copy()
        for layer in result.layers:
            if layer.action == "replace":
                region = layer.alpha == 255
                found = brand.locate(result.image, run.palette, within=region, by_colour=list(run.brand_palette.names))
                labels[region] = found[region]
        layers["brand_labels"], _ = run.save(labels, layer=True)
    report = run.brand_report(result.image, labels)
    # a model regenerated the fix masks: the brand regions the map carries on must be in its pixels (not re-painted
    # by a later stage on trust); inpainting restores nothing itself
    verified = run.verify_brand(result.image, labels) if routed.hosted else None
    handoff = run.handoff(source, result.image, upstream=lighting_iteration, allowed=~unchanged)
    uri, sha = run.save(result.image)
    h, w = result.image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers=layers)
    yield from run.output(
        ref,
        route=routed.decision,
        inputs={"lighting_iteration": lighting_iteration.sha256},
        preview=result.image,
        metrics={
            "fixes": fixes_meta,
            "changed_px": int((~unchanged).sum()),
            "outside_mask_identical": outside_identical,
            **run.colour_metrics(report),
            "drift": handoff.summary,
        },
        drift_check=handoff.check,
        extra={"fix_count": len(result.layers), "outside_mask_identical": outside_identical, **handoff.extra},
        checks=[
            CheckOutcome(
                CHECK_OUTSIDE_MASK,
                passed=outside_identical,
                description="pixels outside the fix masks are byte-identical to the input"
                if outside_identical
                else "pixels outside the fix masks changed",
                metadata={"changed_px_total": int((~unchanged).sum())},
            ),
            *run.colour_checks(report, lock=verified, p95_gated=run.type_is_ours(layers, verified)),
        ],
    )
