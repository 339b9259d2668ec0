"""Read what was materialized from the Dagster instance: latest materialization per stage and partition."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from media_routes import approvals
from media_routes.formats import FORMAT_KEYS
from media_routes.stage_metadata import StageMetadata
from media_routes.stages import CAMPAIGN_STAGES, STAGES, STILL_STAGE, campaign_format_key, split_campaign_format


def latest_record(instance: dg.DagsterInstance, stage: str, partition: str) -> dg.EventLogRecord | None:
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[partition]), limit=1
    )
    return result.records[0] if result.records else None


def materialization_count(instance: dg.DagsterInstance, stage: str, partition: str) -> int:
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[partition]), limit=1000
    )
    return len(result.records)


def trace_row(stage: str, partition: str, record: dg.EventLogRecord) -> dict[str, Any]:
    mat = record.asset_materialization
    assert mat is not None
    meta = StageMetadata.read(mat.metadata)
    row: dict[str, Any] = {
        "stage": stage,
        "partition": partition,
        "run_id": record.run_id,
        "timestamp": datetime.fromtimestamp(record.timestamp, tz=UTC).isoformat(),
        "provider": meta.provider,
        "model": meta.model,
        "seed": meta.seed,
        "data_version": (mat.tags or {}).get("dagster/data_version"),
        "code_version": (mat.tags or {}).get("dagster/code_version"),
        "path": meta.media_path,
        "uri": meta.uri,
        "output_hash": meta.output_hash,
        "input_hashes": meta.input_hashes,
        "size": [meta.width, meta.height],
        "metrics": meta.metrics or {},
        "layers": meta.layers or {},
        "checks": meta.checks or {},
        "drift_heatmap": meta.drift_heatmap_path,
        "route": meta.route or {},
        "credits": meta.credits,
    }
    if meta.duration_s is not None:
        row["duration_s"] = meta.duration_s
    return row


def latest_metadata(instance: dg.DagsterInstance, stage: str, partition: str) -> StageMetadata | None:
    """The metadata of the latest materialization of a stage and partition (None if never materialized)."""
    record = latest_record(instance, stage, partition)
    if record is None or record.asset_materialization is None:
        return None
    return StageMetadata.read(record.asset_materialization.metadata)


def latest_still_hash(instance: dg.DagsterInstance, campaign: str, fmt: str) -> str | None:
    """The content hash of the latest still of a campaign x format (what an approval is of)."""
    meta = latest_metadata(instance, STILL_STAGE, campaign_format_key(campaign, fmt))
    return None if meta is None else meta.output_hash


def trace(instance: dg.DagsterInstance, campaign_id: str, formats: list[str] | None = None) -> list[dict[str, Any]]:
    """Latest materialization of every stage for a campaign (and its formats), pipeline order."""
    rows: list[dict[str, Any]] = []
    for stage in STAGES:
        if stage in CAMPAIGN_STAGES:
            partitions = [campaign_id]
        else:
            partitions = [str(campaign_format_key(campaign_id, f)) for f in (formats or FORMAT_KEYS)]
        for partition in partitions:
            record = latest_record(instance, stage, partition)
            if record is not None:
                row = trace_row(stage, partition, record)
                if stage == STILL_STAGE:
                    campaign, fmt = split_campaign_format(partition)
                    row["approval"] = approvals.latest(instance, campaign, fmt)
                rows.append(row)
    return rows
