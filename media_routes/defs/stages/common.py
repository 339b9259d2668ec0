"""Shared wiring for the stage assets: run config, routing decision, storage and metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np

from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.lib.imaging import (
    decode_png,
    encode_png,
    inline_thumbnail_markdown,
    sha256_hex,
    thumbnail_markdown,
)
from media_routes.lib.media import MediaRef
from media_routes.spec import Campaign

GROUP = "media_pipeline"
OWNERS = ["team:creative-ops"]
LOCAL_MODEL = "local-engine"


class StageConfig(dg.Config):
    """Run parameters for a stage. ``seed`` overrides the spec's seed (used by ``media-routes reroll``)."""

    seed: int | None = None


@dataclass(frozen=True)
class RouteDecision:
    stage: str
    provider: str
    model: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"stage": self.stage, "provider": self.provider, "model": self.model, "reason": self.reason}


def decide_route(campaign: Campaign, stage: str, code_version: str) -> RouteDecision:
    """Which engine runs this stage. Only the local engine exists in this version (hosted: issue #3)."""
    provider = campaign.spec.route.provider_for(stage)
    if provider != "local":  # the spec validator already refuses this; kept as a guard for new providers
        raise dg.Failure(description=f"{stage}: provider {provider!r} has no adapter yet", allow_retries=False)
    return RouteDecision(
        stage=stage,
        provider="local",
        model=f"{LOCAL_MODEL}/{stage}@{code_version}",
        reason=f"route.{stage} = local in {campaign.spec_path.name} (classical image processing, offline)",
    )


def effective_seed(config: StageConfig, campaign: Campaign) -> tuple[int, str]:
    if config.seed is not None:
        return config.seed, "run config (re-roll)"
    return campaign.spec.seed, "spec"


def media_prefix(stage: str, partition: dg.MultiPartitionKey | str) -> str:
    if isinstance(partition, dg.MultiPartitionKey):
        kd = partition.keys_by_dimension
        return f"{stage}/{kd['campaign']}/{kd['format']}"
    return f"{stage}/{partition}"


def stage_asset(
    *, partitions_def: dg.PartitionsDefinition, code_version: str, kinds: set[str], description: str
) -> Any:
    """``@dg.asset`` with what every stage shares: group, owners, code version, partitions."""
    return dg.asset(
        group_name=GROUP,
        owners=OWNERS,
        partitions_def=partitions_def,
        code_version=code_version,
        kinds=kinds,
        description=description,
    )


@dataclass
class StageRun:
    """One stage materializing one partition: the campaign, route and seed, plus storage helpers."""

    context: dg.AssetExecutionContext
    stage: str
    campaign: Campaign
    format_key: str | None
    route: RouteDecision
    seed: int
    seed_source: str
    store: MediaStore
    started: float

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

    def output(
        self,
        ref: MediaRef,
        *,
        inputs: dict[str, str],
        preview: np.ndarray,
        metrics: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> dg.Output[MediaRef]:
        return stage_output(
            ref=ref,
            store=self.store,
            route=self.route,
            seed=self.seed,
            seed_source=self.seed_source,
            inputs=inputs,
            preview=preview,
            metrics=metrics,
            started=self.started,
            extra=extra,
        )


def begin_stage(
    context: dg.AssetExecutionContext,
    stage: str,
    code_version: str,
    config: StageConfig,
    campaigns: CampaignCatalog,
    media_store: MediaStore,
) -> StageRun:
    """Load and validate the campaign of this partition, decide the route, pick the seed."""
    started = time.perf_counter()
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        campaign_id, format_key = key.keys_by_dimension["campaign"], key.keys_by_dimension["format"]
    else:
        campaign_id, format_key = str(key), None
    campaign = campaigns.load(campaign_id)
    seed, seed_source = effective_seed(config, campaign)
    return StageRun(
        context=context,
        stage=stage,
        campaign=campaign,
        format_key=format_key,
        route=decide_route(campaign, stage, code_version),
        seed=seed,
        seed_source=seed_source,
        store=media_store,
        started=started,
    )


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
