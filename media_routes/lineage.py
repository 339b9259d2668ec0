"""Read what was materialized from the Dagster instance: latest materialization per stage and partition."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from media_routes import approvals
from media_routes.formats import FORMAT_KEYS
from media_routes.stages import CAMPAIGN_STAGES, STAGES, STILL_STAGE, campaign_format_key, split_campaign_format


def _value(meta: dict[str, Any], key: str) -> Any:
    v = meta.get(key)
    return None if v is None else getattr(v, "value", v)


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
    meta = dict(mat.metadata)
    row: dict[str, Any] = {
        "stage": stage,
        "partition": partition,
        "run_id": record.run_id,
        "timestamp": datetime.fromtimestamp(record.timestamp, tz=UTC).isoformat(),
        "provider": _value(meta, "provider"),
        "model": _value(meta, "model"),
        "seed": _value(meta, "seed"),
        "data_version": (mat.tags or {}).get("dagster/data_version"),
        "code_version": (mat.tags or {}).get("dagster/code_version"),
        "path": _value(meta, "media_path"),
        "uri": _value(meta, "dagster/uri"),
        "output_hash": _value(meta, "output_hash"),
        "input_hashes": _value(meta, "input_hashes"),
        "size": [_value(meta, "width"), _value(meta, "height")],
        "metrics": _value(meta, "metrics") or {},
        "layers": _value(meta, "layers") or {},
        "checks": _value(meta, "checks") or {},
        "drift_heatmap": _value(meta, "drift_heatmap_path"),
        "route": _value(meta, "route") or {},
        "credits": _value(meta, "credits"),
    }
    if _value(meta, "duration_s") is not None:
        row["duration_s"] = _value(meta, "duration_s")
    return row


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
