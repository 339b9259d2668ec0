"""Stage 4 asset: "K-level" upscaling to 2K or 4K with a guard against over-sharpened skin."""

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
from media_routes.engine.base_composition import headline_alpha, headline_rgb
from media_routes.engine.k_upscale import TypeLayer, integer_factor, upscale
from media_routes.formats import K_LEVEL_LONG_SIDE
from media_routes.hosted.k_upscale import upscale_hosted
from media_routes.lib.media import MediaRef
from media_routes.quality import brand
from media_routes.quality.sharpness import oversharpening
from media_routes.spec import Campaign
from media_routes.stages import K_UPSCALE

CODE_VERSION = "2"  # 2: the headline is set again at the output size, brand regions are not sharpened
CHECK_SHARP = "not_oversharpened"


@stage_asset(
    K_UPSCALE,
    extra_checks={
        CHECK_SHARP: (
            "skin high-frequency energy and edge halos against a Lanczos reference within quality.skin_hf_ratio_max "
            "and quality.halo_overshoot_max",
            False,
        )
    },
    code_version=CODE_VERSION,
    kinds={"python", "opencv"},
    description=(
        "Stage 4: upscales the fixed still to the spec's K-level (2K = 2048 px, 4K = 4096 px long side) with "
        "Lanczos resampling plus edge-aware detail enhancement, processed in tiles so memory stays bounded. "
        "Measures over-sharpening on skin-like regions (high-frequency energy against the Lanczos reference, "
        "halo overshoot) and softens them selectively; before/after figures are in the metadata."
    ),
)
def k_upscale(
    context: dg.AssetExecutionContext,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    providers: ProviderHub,
    inpaint_fix: MediaRef,
) -> Iterator[Any]:
    run = begin_stage(context, K_UPSCALE, CODE_VERSION, config, campaigns, media_store, providers)
    spec = run.campaign.spec
    up = spec.upscale
    source = run.load(inpaint_fix.uri)
    subject_mask = run.load_layer(inpaint_fix, "subject_mask")
    labels_in = run.load_layer(inpaint_fix, "brand_labels")
    target = K_LEVEL_LONG_SIDE[up.target]
    factor = integer_factor(source.shape, target)
    type_layer = headline_type_layer(run.campaign, run.load_layer(inpaint_fix, "headline"), factor)
    routed = run.router.run(
        lambda: upscale(  # deterministic: the seed is not used
            source,
            target,
            detail=up.detail,
            skin_guard=up.skin_guard,
            subject_mask=subject_mask,
            protect=protect_mask(labels_in, len(run.brand_palette.names)),
            type_layer=type_layer,
        ),
        lambda hosted: upscale_hosted(hosted, source, target, subject_mask),
    )
    result = routed.value
    h, w = result.image.shape[:2]
    context.log.info(f"upscaled {source.shape[1]}x{source.shape[0]} -> {w}x{h} ({up.target}): {result.metrics}")
    layers: dict[str, str] = run.carried(inpaint_fix)
    if result.subject_mask is not None:
        layers["subject_mask"], _ = run.save(result.subject_mask, layer=True)
    lanczos = cv2.resize(source, (w, h), interpolation=cv2.INTER_LANCZOS4)  # reference for bridge and guard
    bridged = run.bridge(result.image, lanczos)
    labels = None
    if labels_in is not None:
        labels = brand.resize_labels(labels_in, (w, h))
        if type_layer is not None and not routed.hosted and spec.scene.headline is not None:
            # the headline was set again at this size: its regions are the new glyphs, not the resized old ones
            carried = cv2.resize(type_layer.alpha_in, (w, h), interpolation=cv2.INTER_NEAREST)
            labels = brand.relabel_layer(labels, carried, type_layer.alpha_out, run.palette, spec.scene.headline.color)
            layers["headline"], _ = run.save(type_layer.alpha_out, layer=True)
        layers["brand_labels"], _ = run.save(labels, layer=True)
    locked = run.lock_brand(bridged.image, labels, hosted=routed.hosted, scale=factor)
    image, report = locked.image, locked.after
    handoff = run.handoff(source, image, upstream=inpaint_fix)
    q = run.campaign.spec.quality
    sharp = oversharpening(image, source, lanczos)  # measured on the final output, whatever produced it
    uri, sha = run.save(image)
    ref = MediaRef(
        uri=uri,
        sha256=sha,
        kind="image",
        width=w,
        height=h,
        layers=layers,
        info={"k_level": up.target, "content_scale": factor},
    )
    yield from run.output(
        ref,
        route=routed.decision,
        inputs={"inpaint_fix": inpaint_fix.sha256},
        preview=image,
        metrics={
            "k_level": up.target,
            **result.metrics,
            **run.colour_metrics(report, locked.before),
            "drift": handoff.summary,
            "bridge": bridged.info,
            "oversharpening": sharp,
        },
        checks=[
            *run.colour_checks(report, lock=locked, p95_gated=run.type_is_ours(layers, locked)),
            CheckOutcome(
                CHECK_SHARP,
                passed=sharp["skin_hf_ratio"] <= q.skin_hf_ratio_max
                and sharp["halo_overshoot"] <= q.halo_overshoot_max,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"skin high-frequency energy {sharp['skin_hf_ratio']:.2f}x Lanczos (limit "
                f"{q.skin_hf_ratio_max}), edge halo overshoot {sharp['halo_overshoot']:.2f} levels (limit "
                f"{q.halo_overshoot_max})",
                metadata=sharp,
            ),
        ],
        blank_problems=locked.problems,
        drift_check=handoff.check,
        extra={"k_level": up.target, **handoff.extra},
    )


def headline_type_layer(campaign: Campaign, alpha_in: np.ndarray | None, factor: int) -> TypeLayer | None:
    """The headline to set again at ``factor`` times the still's size, when the base set it from the font (its
    ``headline`` layer, ``alpha_in``) and its colour is a palette colour; otherwise None (a model drew it)."""
    spec = campaign.spec
    rgb = headline_rgb(spec)
    if alpha_in is None or rgb is None or spec.scene.headline is None or spec.scene.headline.color not in spec.palette:
        return None
    alpha_out = headline_alpha(campaign, scale=factor)
    if alpha_out is None:
        return None
    return TypeLayer(alpha_in=alpha_in, alpha_out=alpha_out, rgb=rgb)


def protect_mask(labels: np.ndarray | None, brand_colours: int) -> np.ndarray | None:
    """Where detail enhancement is left out: every brand colour region (label values 1..``brand_colours``; product
    swatches after them are sharpened like the rest of the picture), grown by one pixel (uint8 0/255), or None."""
    if labels is None:
        return None
    regions = (labels > 0) & (labels <= brand_colours)
    if not regions.any():
        return None
    return cv2.dilate(regions.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
