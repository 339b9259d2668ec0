"""Approval of a format's still before motion (the costliest stage) is made from it.

An approval or rejection is an ``AssetObservation`` on the ``aspect_outpaint`` partition, so it is
part of the asset's history in Dagster (who, when, note, and the content hash of the still that was
looked at). ``motion`` for a campaign whose spec says ``approval: required`` runs only when the
latest decision approves exactly the still it would animate; a newer still needs a new approval.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from media_routes.stages import STILL_STAGE, campaign_format_key

STILL_ASSET = dg.AssetKey(STILL_STAGE)


def record(
    instance: dg.DagsterInstance,
    campaign: str,
    fmt: str,
    *,
    approved: bool,
    still_hash: str,
    by: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    decision = {
        "approval": "approved" if approved else "rejected",
        "by": by or os.environ.get("MEDIA_ROUTES_REVIEWER") or getpass.getuser(),
        "note": note,
        "still_hash": still_hash,
        "at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
    }
    instance.report_runless_asset_event(
        dg.AssetObservation(
            STILL_ASSET,
            partition=str(campaign_format_key(campaign, fmt)),
            description=f"still {decision['approval']} by {decision['by']}",
            metadata=decision,
        )
    )
    return decision


def latest(instance: dg.DagsterInstance, campaign: str, fmt: str) -> dict[str, Any] | None:
    """The latest approval or rejection of a campaign x format still, if any."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=STILL_ASSET, asset_partitions=[str(campaign_format_key(campaign, fmt))]),
        limit=20,
    ).records
    for rec in records:
        obs = rec.asset_observation
        if obs is not None and "approval" in obs.metadata:
            return {k: getattr(v, "value", v) for k, v in obs.metadata.items()}
    return None


def blocking_reason(instance: dg.DagsterInstance, campaign: str, fmt: str, still_hash: str) -> str | None:
    """Why motion may not run yet (None: approved for exactly this still)."""
    decision = latest(instance, campaign, fmt)
    how = f"approve it with `media-routes approve {campaign} {fmt}` or the review_still job"
    if decision is None:
        return f"{campaign}|{fmt}: the still {still_hash[:12]} is waiting for approval; {how}"
    if decision["still_hash"] != still_hash:
        return (
            f"{campaign}|{fmt}: the approval by {decision['by']} was for still {decision['still_hash'][:12]}, "
            f"the current still is {still_hash[:12]}; {how}"
        )
    if decision["approval"] != "approved":
        return f"{campaign}|{fmt}: the still was rejected by {decision['by']} ({decision['note'] or 'no note'})"
    return None
