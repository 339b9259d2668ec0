"""Shared wiring for the stage assets: run config, routing decision, storage and metadata."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import dagster as dg
import numpy as np

from media_routes.credits.ledger import Units
from media_routes.defs.campaign_specs import slice_key
from media_routes.defs.partitions import stage_partitions
from media_routes.defs.provider_pools import ProviderPools
from media_routes.defs.providers import ProviderHub
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.hosted.common import HostedStage
from media_routes.lib.imaging import (
    decode_png,
    encode_png,
    inline_thumbnail_markdown,
    sha256_hex,
    thumbnail_markdown,
)
from media_routes.lib.media import MediaRef
from media_routes.quality import brand, drift, gates
from media_routes.routing.execute import Attempt, HostedCalls, RouteFailed, run_plan
from media_routes.routing.profiles import ProfileError
from media_routes.routing.router import Candidate, RoutePlan, plan_stage
from media_routes.spec import Campaign
from media_routes.spec_slices import stage_slice_hashes
from media_routes.stages import get_stage

T = TypeVar("T")
GROUP = "media_pipeline"
OWNERS = ["team:creative-ops"]
LOCAL_MODEL = "local-engine"


class StageConfig(dg.Config):
    """Run parameters for a stage. ``seed`` overrides the spec's seed (used by ``media-routes reroll``)."""

    seed: int | None = None


@dataclass(frozen=True)
class RouteDecision:
    """The route that produced a materialization, and why (the plan, the attempts, the calls)."""

    stage: str
    provider: str
    model: str
    reason: str
    detail: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            **(self.detail or {}),
        }


def effective_seed(config: StageConfig, campaign: Campaign) -> tuple[int, str]:
    if config.seed is not None:
        return config.seed, "run config (re-roll)"
    return campaign.spec.seed, "spec"


def media_prefix(stage: str, partition: dg.MultiPartitionKey | str) -> str:
    if isinstance(partition, dg.MultiPartitionKey):
        kd = partition.keys_by_dimension
        return f"{stage}/{kd['campaign']}/{kd['format']}"
    return f"{stage}/{partition}"


# Checks every stage emits with its materialization (computed in the stage; figures in metadata too).
CHECK_NOT_BLANK = "output_not_blank"
CHECK_BRAND = "brand_colours_locked"
CHECK_DRIFT = "handoff_drift"
COMMON_CHECKS: dict[str, tuple[str, bool]] = {
    CHECK_NOT_BLANK: (
        "the output is not black, blank or uniform, and a video has no black or frozen frames (a refused or "
        "failed generation); blocks downstream",
        True,
    ),
    CHECK_BRAND: (
        "every located brand colour's region-mean CIEDE2000 is within quality.brand_delta_e_max; blocks downstream",
        True,
    ),
    CHECK_DRIFT: (
        "hand-off drift against the stage's input within the quality thresholds (grid CIEDE2000, deep-shadow "
        "chroma, SSIM outside the allowed region; frame SSIM and style drift for video); warns",
        False,
    ),
}


# Pool of the local engine's steps: CPU-bound image work, limited per instance in dagster.yaml
# (concurrency.pools). Each hosted provider has its own Dagster pool, claimed per provider job at run time
# (defs/provider_pools.py: provider_google, provider_fal, provider_kling), plus client-side slots.
LOCAL_ENGINE_POOL = "local_engine"

# Transient failures (a full disk, a lost file handle, a killed subprocess) are retried with backoff and
# jitter; failures that cannot change on a retry (invalid spec, missing approval, no adapter) are raised
# as ``dg.Failure(allow_retries=False)`` and fail at once.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def stage_asset(
    stage: str,
    *,
    code_version: str,
    kinds: set[str],
    description: str,
    extra_checks: dict[str, tuple[str, bool]] | None = None,
) -> Any:
    """``@dg.asset`` for one stage declared in media_routes/stages.py, with what every stage shares: group,
    owners, code version, its partitions (campaign or campaign x format, from the declaration), its spec slice,
    checks. ``extra_checks`` maps a check name to (description, blocking).
    """
    checks = COMMON_CHECKS | (extra_checks or {})
    name = get_stage(stage).name
    return dg.asset(
        name=name,
        deps=[slice_key(name)],  # its slice of the campaign spec: an edit there makes this stage stale
        pool=LOCAL_ENGINE_POOL,
        retry_policy=TRANSIENT_RETRY,
        group_name=GROUP,
        owners=OWNERS,
        partitions_def=stage_partitions(name),
        code_version=code_version,
        kinds=kinds,
        description=description,
        check_specs=[
            dg.AssetCheckSpec(check, asset=name, description=desc, blocking=blocking)
            for check, (desc, blocking) in checks.items()
        ],
    )


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    metadata: dict[str, Any] | None = None

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=self.name,
            passed=self.passed,
            severity=self.severity,
            description=self.description,
            metadata=_jsonable(self.metadata or {}),
        )


@dataclass
class StageRun:
    """One stage materializing one partition: the campaign, route and seed, plus storage helpers."""

    context: dg.AssetExecutionContext
    stage: str
    campaign: Campaign
    format_key: str | None
    seed: int
    seed_source: str
    store: MediaStore
    started: float
    plan: RoutePlan
    providers: ProviderHub
    code_version: str
    calls: HostedCalls
    _chosen: Candidate | None = None
    _attempts: list[Attempt] | None = None

    @property
    def route(self) -> RouteDecision:
        """The route that produced this stage's output (after :meth:`run_route`)."""
        if self._chosen is None:
            raise RuntimeError(f"{self.stage}: run_route was not called before the output")
        cand = self._chosen
        model = f"{LOCAL_MODEL}/{self.stage}@{self.code_version}" if cand.provider == "local" else cand.model
        fell_back = [a for a in self._attempts or [] if a.outcome == "fallback"]
        reason = f"{cand.route} from {self.plan.source}"
        if fell_back:
            reason += " after falling back from " + ", ".join(a.route for a in fell_back)
        return RouteDecision(
            stage=self.stage,
            provider=cand.provider,
            model=model,
            reason=reason,
            detail={
                "route": cand.route,
                "credits_estimate": cand.credits,
                "plan": self.plan.as_json(),
                "attempts": [a.__dict__ for a in self._attempts or []],
                "calls": self.calls.summary(),
            },
        )

    def run_route(self, local: Callable[[], T], hosted: Callable[[HostedStage], T]) -> T:
        """Produce the stage's raw result on the planned route, falling back as the plan allows.

        ``local`` runs the local engine (the stage's compute seconds go into the ledger at zero credits); ``hosted``
        gets a :class:`HostedStage` for the candidate being tried. A route that cannot produce the output
        fails the step with the provider, model, reason and request id (retried by Dagster only for outages).
        """

        def attempt(cand: Candidate) -> T:
            if cand.provider == "local":
                return local()  # its compute seconds go into the ledger with the output (see output())
            return hosted(
                HostedStage(cand, self.calls, self.providers, self.campaign, self.seed, self.plan.profile.prompt_style)
            )

        for line in self.plan.explain():
            self.context.log.info(f"route plan: {line}")
        try:
            value, cand, attempts = run_plan(self.plan, attempt, log=self.context.log, health=self.providers.health())
        except RouteFailed as exc:
            raise dg.Failure(
                description=str(exc),
                allow_retries=exc.retryable,
                metadata={
                    "route_plan": dg.MetadataValue.json(self.plan.as_json()),
                    "attempts": dg.MetadataValue.json([a.__dict__ for a in exc.attempts]),
                    "calls": dg.MetadataValue.json(self.calls.summary()),
                },
            ) from None
        self._chosen, self._attempts = cand, attempts
        return value

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
    def palette(self) -> brand.Palette:
        return brand.Palette.from_dict(self.campaign.spec.palette)

    def brand_report(
        self, image: np.ndarray, labels: np.ndarray | None, *, per_pixel: bool = True
    ) -> dict[str, dict[str, float]]:
        return {} if labels is None else brand.measure(image, labels, self.palette, per_pixel=per_pixel)

    def brand_check(self, report: dict[str, dict[str, float]], *, frames: int | None = None) -> CheckOutcome:
        limit = self.campaign.spec.quality.brand_delta_e_max
        worst = brand.worst(report)
        where = f" over {frames} frames" if frames else ""
        return CheckOutcome(
            CHECK_BRAND,
            passed=worst <= limit,
            description=f"worst brand colour region-mean CIEDE2000{where}: {worst:.2f} (limit {limit})"
            if report
            else "no brand colour regions located",
            metadata={"worst_delta_e": worst, "limit": limit, "colours": report},
        )

    def correct_brand(
        self, image: np.ndarray, labels: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, dict[str, float]], dict[str, dict[str, float]], list[str]]:
        """Gate the raw output, then restore brand colours: (image, report before, report after, problems).

        A black, blank or uniform output is left as it is: painting brand colours onto a refused
        generation would hide it from the ``output_not_blank`` check.
        """
        problems = gates.image_problems(image)
        if labels is None:
            return image, {}, {}, problems
        before = self.brand_report(image, labels)
        if problems:
            return image, before, before, problems
        corrected = brand.correct(image, labels, self.palette)
        return corrected, before, self.brand_report(corrected, labels), problems

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
    ) -> tuple[dict[str, Any], CheckOutcome, dict[str, str]]:
        """Drift of ``output`` against the stage input (and the base composition), heatmap, WARN check.

        ``placement`` locates the input inside ``output`` (outpaint); ``allowed`` marks where the stage
        may change pixels (not counted); ``grade`` says a global tone and colour change is the stage's
        purpose (lighting): grid drift and SSIM are reported but only deep-shadow chroma is gated.
        """
        q = self.campaign.spec.quality
        ref_w, out_w = drift.align(reference, output, placement)
        allowed_w = None
        if allowed is not None:
            allowed_w = cv2.resize(allowed.astype(np.uint8), ref_w.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        vs_input = drift.measure(ref_w, out_w, allowed_w)
        summary: dict[str, Any] = {"vs_input": vs_input.summary()}
        base_uri = upstream.layers.get("base") if upstream is not None else None
        if base_uri:
            base_img = self.load(base_uri)
            summary["vs_base"] = drift.measure(*drift.align(base_img, output, placement)).summary()
        heat = drift.heatmap(vs_input.grid_delta_e, ref_w.shape[1::-1])
        heat_uri, _ = self.save(heat, layer=True)
        s = summary["vs_input"]
        problems = []
        if not grade and s["grid_delta_e_max"] > q.drift_delta_e_warn:
            problems.append(f"grid CIEDE2000 max {s['grid_delta_e_max']:.1f} > {q.drift_delta_e_warn}")
        if s["shadow_chroma_retention"] is not None and s["shadow_chroma_retention"] < q.shadow_chroma_min:
            problems.append(f"deep-shadow chroma kept {s['shadow_chroma_retention']:.2f} < {q.shadow_chroma_min}")
        if not grade and s["ssim_outside"] is not None and s["ssim_outside"] < q.ssim_outside_min:
            problems.append(f"SSIM outside the allowed region {s['ssim_outside']:.3f} < {q.ssim_outside_min}")
        check = warn_check(CHECK_DRIFT, problems, "hand-off drift within thresholds", summary)
        extra = {
            "drift_heatmap": dg.MetadataValue.md(drift_heatmap_md(heat)),
            "drift_heatmap_path": heat_uri,
        }
        return summary, check, extra

    def bridge_if_drifted(
        self, output: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Low-strength realignment toward ``reference`` when drift exceeds the tolerance.

        ``reference`` is the stage input brought to the geometry of ``output[box]`` (whole image if no
        box). Returns the (possibly) bridged output and what was measured before and after.
        """
        q = self.campaign.spec.quality
        if self.stage not in q.bridge_stages:
            return output, {"enabled": False}
        if gates.image_problems(output):  # a refused/blank output must fail its gate, not be repainted
            return output, {"enabled": True, "applied": False, "skipped": "output failed the blank gate"}
        x, y, w, h = box or (0, 0, output.shape[1], output.shape[0])
        region = output[y : y + h, x : x + w]
        before = drift.measure(*drift.align(reference, region)).summary()
        retention = before["shadow_chroma_retention"]
        drifted = before["grid_delta_e_max"] > q.drift_delta_e_warn or (
            retention is not None and retention < q.shadow_chroma_min
        )
        if not drifted:
            return output, {"enabled": True, "applied": False, "before": before}
        bridged = output.copy()
        fixed, after = region, before
        for _ in range(2):  # a second pass only when it still helps
            candidate = drift.bridge(fixed, reference, strength=q.bridge_strength)
            measured = drift.measure(*drift.align(reference, candidate)).summary()
            if measured["grid_delta_e_max"] >= after["grid_delta_e_max"] and fixed is not region:
                break
            fixed, after = candidate, measured
            if after["grid_delta_e_max"] <= q.drift_delta_e_warn:
                break
        bridged[y : y + h, x : x + w] = fixed
        self.context.log.warning(
            f"{self.stage}: drift over tolerance (grid max {before['grid_delta_e_max']:.1f}, shadow chroma "
            f"{retention}); bridge pass -> grid max {after['grid_delta_e_max']:.1f}, "
            f"shadow chroma {after['shadow_chroma_retention']}"
        )
        return bridged, {"enabled": True, "applied": True, "before": before, "after": after}

    def output(
        self,
        ref: MediaRef,
        *,
        inputs: dict[str, str],
        preview: np.ndarray,
        metrics: dict[str, Any],
        extra: dict[str, Any] | None = None,
        checks: list[CheckOutcome] = (),  # type: ignore[assignment]
        blank_problems: list[str] | None = None,
        drift_check: CheckOutcome | None = None,
    ) -> Iterator[dg.Output[MediaRef] | dg.AssetCheckResult]:
        """The materialization (content-hash data version + standard metadata), then its checks."""
        problems = gates.image_problems(preview) if blank_problems is None else blank_problems
        outcomes = [
            CheckOutcome(
                CHECK_NOT_BLANK,
                passed=not problems,
                description="; ".join(problems) or "output has content",
                metadata={"problems": problems},
            ),
            *checks,
            drift_check or CheckOutcome(CHECK_DRIFT, passed=True, description="first stage: no input to drift from"),
        ]
        gate_meta = {o.name: "passed" if o.passed else f"FAILED: {o.description}" for o in outcomes}
        if self.route.provider == "local":  # the local engine's work is priced at zero but recorded
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
            route=self.route,
            seed=self.seed,
            seed_source=self.seed_source,
            inputs=inputs,
            preview=preview,
            metrics=metrics,
            started=self.started,
            extra={
                **(extra or {}),
                "checks": dg.MetadataValue.json(gate_meta),
                # the hash of the spec fields and files this stage read (spec_slices.py): estimate uses it
                "spec_slice": stage_slice_hashes(self.campaign)[self.stage],
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
) -> StageRun:
    """Load and validate the campaign of this partition, plan the route, pick the seed."""
    started = time.perf_counter()
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        campaign_id, format_key = key.keys_by_dimension["campaign"], key.keys_by_dimension["format"]
    else:
        campaign_id, format_key = str(key), None
    campaign = campaigns.load(campaign_id)  # dg.Failure(allow_retries=False) on an invalid spec
    seed, seed_source = effective_seed(config, campaign)
    try:
        plan = plan_stage(campaign, stage, format_key, providers.router_context())
    except ProfileError as exc:
        raise dg.Failure(description=f"campaign {campaign.id!r}: {exc}", allow_retries=False) from None
    return StageRun(
        context=context,
        stage=stage,
        campaign=campaign,
        format_key=format_key,
        seed=seed,
        seed_source=seed_source,
        store=media_store,
        started=started,
        plan=plan,
        providers=providers,
        code_version=code_version,
        calls=HostedCalls(
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
        ),
    )


def warn_check(name: str, problems: list[str], ok: str, metadata: dict[str, Any]) -> CheckOutcome:
    """A WARN check that fails with the listed problems (passes with ``ok`` when there are none)."""
    return CheckOutcome(
        name,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or ok,
        metadata=metadata,
    )


def drift_heatmap_md(heat: np.ndarray) -> str:
    return inline_thumbnail_markdown(heat, title="drift heatmap")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


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
    metadata: dict[str, Any] = {
        "provider": route.provider,
        "model": route.model,
        "seed": seed,
        "seed_source": seed_source,
        "route": dg.MetadataValue.json(route.as_json()),
        "credits": float((route.detail or {}).get("calls", {}).get("credits", 0.0)),
        "cache_hits": int((route.detail or {}).get("calls", {}).get("cache_hits", 0)),
        "credits_estimate": float((route.detail or {}).get("credits_estimate") or 0.0),
        "input_hashes": dg.MetadataValue.json(inputs),
        "output_hash": ref.sha256,
        "width": ref.width,
        "height": ref.height,
        # not "path": the IO manager writes its own "path" (the pickled reference) and would win
        "media_path": dg.MetadataValue.path(str(path) if path else ref.uri),
        "dagster/uri": ref.uri,
        "layers": dg.MetadataValue.json(dict(ref.layers)),
        # small enough to render inline in the UI's metadata table; a larger one behind [Show Markdown]
        "preview": dg.MetadataValue.md(inline_thumbnail_markdown(preview, title=route.stage)),
        "preview_large": dg.MetadataValue.md(thumbnail_markdown(preview, title=f"{route.stage} {ref.short_hash}")),
        "metrics": dg.MetadataValue.json(_jsonable(metrics)),
        "compute_s": round(time.perf_counter() - started, 3),
    }
    if extra:
        metadata.update(extra)
    return dg.Output(ref, data_version=dg.DataVersion(ref.sha256), metadata=metadata)
