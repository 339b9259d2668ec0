"""The I/O side of one stage materializing one partition: load inputs, save outputs, emit metadata and checks.

``begin_stage`` loads and validates the partition's campaign, picks the seed and plans the route; it returns a
:class:`StageIO` whose ``router`` runs the route (media_routes/defs/stages/route_runner.py). The image logic a
stage applies around its engine (brand lock, hand-off drift, the bridge pass, video pre-compensation) lives in
pure modules (``quality.brand``, ``quality.handoff``, ``engine.encode_attempts``); this module only stores what
they return and turns it into metadata.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np

from media_routes.credits.ledger import Units
from media_routes.defs.provider_pools import ProviderPools
from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.stages.checks import (
    CHECK_DRIFT,
    CheckOutcome,
    brand_check,
    handoff_check,
    jsonable,
    not_blank_check,
    product_check,
)
from media_routes.defs.stages.declare import StageConfig
from media_routes.defs.stages.route_runner import LOCAL_MODEL, RouteDecision, RouteRunner
from media_routes.engine.base_composition import protected_sources
from media_routes.lib.imaging import (
    decode_png,
    encode_png,
    inline_thumbnail_markdown,
    sha256_hex,
    thumbnail_markdown,
)
from media_routes.lib.media import MediaRef
from media_routes.quality import alignment, brand, gates, product
from media_routes.quality.handoff import Bridge, bridge_if_drifted, measure_handoff
from media_routes.routing.execute import HostedCalls
from media_routes.routing.profiles import ProfileError
from media_routes.routing.router import plan_stage
from media_routes.spec import Campaign
from media_routes.spec_slices import stage_slice_hashes
from media_routes.stage_metadata import StageMetadata
from media_routes.stages import CAMPAIGN_DIMENSION, FORMAT_DIMENSION


def effective_seed(config: StageConfig, campaign: Campaign) -> tuple[int, str]:
    if config.seed is not None:
        return config.seed, "run config (re-roll)"
    return campaign.spec.seed, "spec"


def media_prefix(stage: str, partition: dg.MultiPartitionKey | str) -> str:
    if isinstance(partition, dg.MultiPartitionKey):
        kd = partition.keys_by_dimension
        return f"{stage}/{kd[CAMPAIGN_DIMENSION]}/{kd[FORMAT_DIMENSION]}"
    return f"{stage}/{partition}"


@dataclass(frozen=True)
class HandoffOutcome:
    """Hand-off drift of a stage output: the figures, the WARN check and the heatmap metadata."""

    summary: dict[str, Any]
    check: CheckOutcome
    extra: dict[str, Any]


@dataclass
class StageIO:
    """One stage materializing one partition: the campaign, seed and store, and the route runner."""

    context: dg.AssetExecutionContext
    stage: str
    campaign: Campaign
    format_key: str | None
    seed: int
    seed_source: str
    store: MediaStore
    providers: ProviderHub
    started: float
    router: RouteRunner

    @property
    def prefix(self) -> str:
        return media_prefix(self.stage, self.context.partition_key)

    def load(self, uri: str) -> np.ndarray:
        return decode_png(self.store.read_bytes(uri))

    def load_layer(self, ref: MediaRef, name: str) -> np.ndarray | None:
        uri = ref.layers.get(name)
        return self.load(uri) if uri else None

    def save(self, image: np.ndarray, *, layer: bool = False) -> tuple[str, str]:
        """Store a PNG (the stage output, or a companion layer); returns (uri, sha256)."""
        data = encode_png(image)
        prefix = f"{self.prefix}/layers" if layer else self.prefix
        return self.store.put_bytes(data, prefix=prefix, ext="png"), sha256_hex(data)

    @property
    def brand_palette(self) -> brand.Palette:
        """The spec's palette alone (what the headline and brand patches are located with)."""
        return brand.Palette.from_dict(self.campaign.spec.palette)

    @functools.cached_property
    def product_swatches(self) -> tuple[np.ndarray | None, brand.Palette]:
        """The protected layers' swatch map on the authored canvas and their palette (``quality.product``); no map
        and an empty palette when no layer is protected."""
        if not any(layer.protect for layer in self.campaign.spec.scene.layers):
            return None, brand.Palette((), ())
        return product.swatches(protected_sources(self.campaign))

    @property
    def palette(self) -> brand.Palette:
        """The brand colours, then the product swatches: the values of every stage's ``brand_labels`` map."""
        labels, swatches = self.product_swatches
        brand_palette = self.brand_palette
        if labels is None:
            return brand_palette
        return product.combine(brand_palette, swatches)

    def colour_checks(
        self,
        report: dict[str, dict[str, Any]],
        *,
        frames: int | None = None,
        p95: float | None = None,
        p95_gated: bool = True,
        product_worst: float | None = None,
        lock: brand.BrandLock | None = None,
        lost: str = "",
        provider: dict[str, Any] | None = None,
    ) -> list[CheckOutcome]:
        """The brand check (on the brand colours of ``report``) and the product check (on its swatches;
        ``product_worst``: the worst over a clip's frames, where ``report`` is one frame's)."""
        brand_part, product_part = product.split(report)
        return [
            self.brand_check(
                brand_part, frames=frames, p95=p95, p95_gated=p95_gated, lock=lock, lost=lost, provider=provider
            ),
            product_check(
                product_part, self.campaign.spec.quality.product_delta_e_max, frames=frames, worst=product_worst
            ),
        ]

    def type_is_ours(self, layers: dict[str, str], lock: brand.BrandLock | None) -> bool:
        """Whether a still's brand pixels are the project's own, so their interior p95 is gated: the type was set
        from the font (the base's ``headline`` layer, carried in ``layers``; or the spec has no headline) and this
        output is not a provider's (``lock`` without a verification). A model's strokes are reported, not gated:
        the lock moves their mean, it cannot make a provider's uneven strokes even."""
        set_here = "headline" in layers or self.campaign.spec.scene.headline is None
        return set_here and (lock is None or lock.verification is None)

    @staticmethod
    def colour_metrics(after: dict[str, Any], before: dict[str, Any] | None = None) -> dict[str, Any]:
        """A stage's colour figures, brand colours and product swatches apart."""
        brand_after, product_after = product.split(after)
        out: dict[str, Any] = {"brand": brand_after}
        if before is not None:
            out["brand_before_correction"] = product.split(before)[0]
        if product_after or (before and product.split(before)[1]):
            out["product_colours"] = product_after
            if before is not None:
                out["product_colours_before_correction"] = product.split(before)[1]
        return out

    def brand_report(
        self, image: np.ndarray, labels: np.ndarray | None, *, per_pixel: bool = True, scale: float = 1.0
    ) -> dict[str, dict[str, Any]]:
        """``brand.measure`` with the stroke interior eroded by the anti-aliasing width at ``scale`` (the image's
        content size over the authored canvas)."""
        if labels is None:
            return {}
        return brand.measure(image, labels, self.palette, per_pixel=per_pixel, aa_px=brand.aa_width(scale))

    def brand_check(
        self,
        report: dict[str, dict[str, float]],
        *,
        frames: int | None = None,
        p95: float | None = None,
        p95_gated: bool = True,
        lock: brand.BrandLock | None = None,
        lost: str = "",
        provider: dict[str, Any] | None = None,
    ) -> CheckOutcome:
        """The brand check of the delivered output (``p95``: the worst interior p95 over a clip's frames, where
        ``report`` is its worst frame's); for a provider's output (``lock`` with a verification, or a
        clip's ``lost`` frames and ``provider`` figures) it also fails where the brand was not in its own pixels."""
        if lock is not None and lock.verification is not None:
            lost = lost or alignment.describe_lost_regions(lock.verification)
            provider = provider or {"before_correction": lock.before, **lock.verification.summary()}
        q = self.campaign.spec.quality
        return brand_check(
            report,
            q.brand_delta_e_max,
            p95_limit=q.brand_p95_max,
            p95=p95,
            p95_gated=p95_gated,
            frames=frames,
            lost=lost,
            provider=provider,
        )

    def lock_brand(
        self, image: np.ndarray, labels: np.ndarray | None, *, hosted: bool = False, scale: float = 1.0
    ) -> brand.BrandLock:
        """Restore brand colours where the label map places them; on a provider's output (``hosted``) only in the
        regions found in its own pixels (``quality.alignment.lock_verified``). ``scale`` is the image's content size
        over the authored canvas: the stroke interiors are eroded by the anti-aliasing width at that size."""
        aa_px = brand.aa_width(scale)
        if hosted:
            return alignment.lock_verified(image, labels, self.palette, aa_px=aa_px)
        return brand.lock(image, labels, self.palette, aa_px=aa_px)

    def verify_brand(self, image: np.ndarray, labels: np.ndarray | None) -> brand.BrandLock:
        """A provider's output that is not restored here (inpaint_fix): which brand regions are in its own pixels."""
        if labels is None:
            return brand.BrandLock(image, {}, {}, [])
        report = brand.measure(image, labels, self.palette)
        return brand.BrandLock(image, report, report, [], verification=alignment.verify(image, labels, self.palette))

    def carried(self, upstream: MediaRef) -> dict[str, str]:
        """Layers every stage passes on unchanged (the base composition, for drift against it)."""
        return {k: v for k, v in upstream.layers.items() if k == "base"}

    def handoff(
        self,
        reference: np.ndarray,
        output: np.ndarray,
        *,
        upstream: MediaRef | None = None,
        placement: tuple[int, int, int, int] | None = None,
        allowed: np.ndarray | None = None,
        grade: bool = False,
    ) -> HandoffOutcome:
        """Hand-off drift (``quality.handoff.measure_handoff``) with its heatmap stored as a layer."""
        base_uri = upstream.layers.get("base") if upstream is not None else None
        measured = measure_handoff(
            reference,
            output,
            self.campaign.spec.quality,
            base=self.load(base_uri) if base_uri else None,
            placement=placement,
            allowed=allowed,
            grade=grade,
        )
        heat_uri, _ = self.save(measured.heatmap, layer=True)
        extra = {
            "drift_heatmap": dg.MetadataValue.md(drift_heatmap_md(measured.heatmap)),
            StageMetadata.key("drift_heatmap_path"): heat_uri,
        }
        return HandoffOutcome(measured.summary, handoff_check(measured), extra)

    def bridge(self, output: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int] | None = None) -> Bridge:
        """The bridge pass (``quality.handoff.bridge_if_drifted``), logged when applied."""
        bridged = bridge_if_drifted(self.stage, output, reference, self.campaign.spec.quality, box)
        if bridged.message:
            self.context.log.warning(bridged.message)
        return bridged

    def output(
        self,
        ref: MediaRef,
        *,
        route: RouteDecision,
        inputs: dict[str, str],
        preview: np.ndarray,
        metrics: dict[str, Any],
        extra: dict[str, Any] | None = None,
        checks: Sequence[CheckOutcome] = (),
        blank_problems: list[str] | None = None,
        drift_check: CheckOutcome | None = None,
    ) -> Iterator[dg.Output[MediaRef] | dg.AssetCheckResult]:
        """The materialization (content-hash data version + standard metadata), then its checks."""
        problems = gates.image_problems(preview) if blank_problems is None else blank_problems
        outcomes = [
            not_blank_check(problems),
            *checks,
            drift_check or CheckOutcome(CHECK_DRIFT, passed=True, description="first stage: no input to drift from"),
        ]
        gate_meta = {o.name: "passed" if o.passed else f"FAILED: {o.description}" for o in outcomes}
        if route.provider == "local":  # the local engine's work is priced at zero but recorded
            self.providers.ledger().record(
                run_id=self.context.run.run_id,
                campaign=self.campaign.id,
                format=self.format_key,
                stage=self.stage,
                provider="local",
                model=LOCAL_MODEL,
                units=Units(compute_seconds=round(time.perf_counter() - self.started, 3)),
                hit=False,
                call_key=None,
            )
        yield stage_output(
            ref=ref,
            store=self.store,
            route=route,
            seed=self.seed,
            seed_source=self.seed_source,
            inputs=inputs,
            preview=preview,
            metrics=metrics,
            started=self.started,
            extra={
                **(extra or {}),
                StageMetadata.key("checks"): dg.MetadataValue.json(gate_meta),
                # the hash of the spec fields and files this stage read (spec_slices.py): estimate uses it
                StageMetadata.key("spec_slice"): stage_slice_hashes(self.campaign)[self.stage],
            },
        )
        for outcome in outcomes:
            if not outcome.passed:
                self.context.log.error(f"{self.stage} check {outcome.name} failed: {outcome.description}")
            yield outcome.result()


def begin_stage(
    context: dg.AssetExecutionContext,
    stage: str,
    code_version: str,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
    providers: ProviderHub,
) -> StageIO:
    """Load and validate the campaign of this partition, plan the route, pick the seed."""
    started = time.perf_counter()
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        campaign_id = key.keys_by_dimension[CAMPAIGN_DIMENSION]
        format_key: str | None = key.keys_by_dimension[FORMAT_DIMENSION]
    else:
        campaign_id, format_key = str(key), None
    campaign = campaigns.load(campaign_id)  # dg.Failure(allow_retries=False) on an invalid spec
    seed, seed_source = effective_seed(config, campaign)
    try:
        plan = plan_stage(campaign, stage, format_key, providers.router_context())
    except ProfileError as exc:
        raise dg.Failure(description=f"campaign {campaign.id!r}: {exc}", allow_retries=False) from None
    calls = HostedCalls(
        hub=providers,
        run_id=context.run.run_id,
        campaign=campaign.id,
        stage=stage,
        format_key=format_key,
        log=context.log,
        budget_credits=campaign.spec.budget.credits if campaign.spec.budget else None,
        pool_slot=ProviderPools(
            context.instance, context.run.run_id, stage, providers.pool_limits(), log=context.log
        ).slot,
    )
    return StageIO(
        context=context,
        stage=stage,
        campaign=campaign,
        format_key=format_key,
        seed=seed,
        seed_source=seed_source,
        store=media_store,
        providers=providers,
        started=started,
        router=RouteRunner(
            stage=stage,
            code_version=code_version,
            campaign=campaign,
            seed=seed,
            plan=plan,
            providers=providers,
            calls=calls,
            log=context.log,
        ),
    )


def drift_heatmap_md(heat: np.ndarray) -> str:
    return inline_thumbnail_markdown(heat, title="drift heatmap")


def stage_output(
    *,
    ref: MediaRef,
    store: MediaStore,
    route: RouteDecision,
    seed: int,
    seed_source: str,
    inputs: dict[str, str],
    preview: np.ndarray,
    metrics: dict[str, Any],
    started: float,
    extra: dict[str, Any] | None = None,
) -> dg.Output[MediaRef]:
    """Wrap a stage result: content-hash data version plus the standard metadata every stage carries."""
    path = store.local_path(ref.uri)
    k = StageMetadata.key
    metadata: dict[str, Any] = {
        k("provider"): route.provider,
        k("model"): route.model,
        k("seed"): seed,
        k("seed_source"): seed_source,
        k("route"): dg.MetadataValue.json(route.as_json()),
        k("credits"): route.credits,
        k("cache_hits"): route.cache_hits,
        k("credits_estimate"): route.credits_estimate,
        k("input_hashes"): dg.MetadataValue.json(inputs),
        k("output_hash"): ref.sha256,
        k("width"): ref.width,
        k("height"): ref.height,
        k("media_path"): dg.MetadataValue.path(str(path) if path else ref.uri),
        k("uri"): ref.uri,
        k("layers"): dg.MetadataValue.json(dict(ref.layers)),
        # small enough to render inline in the UI's metadata table; a larger one behind [Show Markdown]
        "preview": dg.MetadataValue.md(inline_thumbnail_markdown(preview, title=route.stage)),
        "preview_large": dg.MetadataValue.md(thumbnail_markdown(preview, title=f"{route.stage} {ref.short_hash}")),
        k("metrics"): dg.MetadataValue.json(jsonable(metrics)),
        k("compute_s"): round(time.perf_counter() - started, 3),
    }
    if extra:
        metadata.update(extra)
    return dg.Output(ref, data_version=dg.DataVersion(ref.sha256), metadata=metadata)
