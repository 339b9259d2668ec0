"""Stage 1 asset: the campaign's blueprint image (layout, subjects, exact headline) at 1K."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np

from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.declare import StageConfig, stage_asset
from media_routes.defs.stages.stage_io import begin_stage
from media_routes.engine.base_composition import compose
from media_routes.hosted.base_composition import compose_hosted
from media_routes.lib.media import MediaRef
from media_routes.quality import brand, product
from media_routes.stages import BASE_COMPOSITION

CODE_VERSION = "1"


@stage_asset(
    BASE_COMPOSITION,
    code_version=CODE_VERSION,
    kinds={"python", "pillow", "opencv"},
    description=(
        "Stage 1: the blueprint still at 1K (1024 px long side): palette background with seeded texture, "
        "subject cutouts placed per layout with soft shadows from the key light, and the exact headline "
        "in the brand font. Local engine: a layered compositor; hosted (Nano Banana Pro) renders from that layout."
    ),
)
def base_composition(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    providers: ProviderHub,
) -> Iterator[Any]:
    run = begin_stage(context, BASE_COMPOSITION, CODE_VERSION, config, campaigns, media_store, providers)
    spec = run.campaign.spec
    layout = compose(run.campaign, seed=run.seed)  # the local blueprint; a hosted route renders from it
    routed = run.router.run(lambda: layout, lambda hosted: compose_hosted(hosted, layout))
    result = routed.value
    # brand colours: the headline's glyphs (where the layout put them), plus any colour the spec asks to lock
    headline = spec.scene.headline
    exact = {}
    if headline is not None and headline.color in spec.palette and layout.headline_alpha is not None:
        exact[headline.color] = layout.headline_alpha
    labels = brand.locate(result.image, run.brand_palette, exact=exact, by_colour=spec.quality.brand_lock)
    # protected product layers: their swatches join the map after the brand colours (quality/product.py)
    swatch_labels, swatches = run.product_swatches
    if swatch_labels is not None:
        labels = product.merge(labels, run.brand_palette, swatch_labels, swatches)[0]
    image, drifted, report, problems = result.image, {}, run.brand_report(result.image, labels), None
    handoff, locked = None, None
    if result.headline_alpha is None:  # a model rendered it: restore brand colours as every later stage does,
        # where the model's own pixels show them (a headline the model moved or dropped is not painted back)
        locked = run.lock_brand(result.image, labels, hosted=routed.hosted)
        image, drifted, report, problems = locked.image, locked.before, locked.after, locked.problems
        # and measure how far the render moved from the blueprint it was given (a render regrades by design:
        # only deep-shadow chroma is gated, the rest is reported)
        handoff = run.handoff(layout.image, image, grade=True)
    elif swatch_labels is not None:  # the scene's key light and tint fell on the product: hold it to its source
        n_brand = len(run.brand_palette.names)
        held = brand.lock(result.image, np.where(labels > n_brand, labels, 0).astype(np.uint8), run.palette)
        image, drifted, problems = held.image, held.before, held.problems
        report = run.brand_report(image, labels)
    uri, sha = run.save(image)
    layers = {
        "base": uri,
        "subject_mask": run.save(result.subject_mask, layer=True)[0],
        "brand_labels": run.save(labels, layer=True)[0],
    }
    if result.headline_alpha is not None:  # set here from the font: later stages set it again at their size
        layers["headline"] = run.save(result.headline_alpha, layer=True)[0]
    h, w = image.shape[:2]
    ref = MediaRef(uri=uri, sha256=sha, kind="image", width=w, height=h, layers=layers)
    context.log.info(
        f"{run.campaign.id}: composed {w}x{h}, {len(spec.scene.layers)} layers on {routed.decision.provider}"
    )
    yield from run.output(
        ref,
        route=routed.decision,
        inputs={"spec": run.campaign.digest()},
        preview=image,
        metrics={
            **result.metrics,
            **run.colour_metrics(report, drifted),
            **({"drift_vs_layout": handoff.summary} if handoff else {}),
        },
        checks=run.colour_checks(report, lock=locked, p95_gated=run.type_is_ours(layers, locked)),
        blank_problems=problems,
        drift_check=handoff.check if handoff else None,
        extra=handoff.extra if handoff else {},
    )
