"""`review_still`: approve or reject a format's still from the Dagster UI (Launchpad config)."""

import dagster as dg

from media_routes import approvals
from media_routes.formats import FORMAT_KEYS
from media_routes.lineage import latest_still_hash


class ReviewConfig(dg.Config):
    campaign: str
    format: str
    approve: bool = True
    note: str = ""
    reviewer: str = ""


@dg.op(description="Record an approval or rejection of the latest aspect_outpaint still of a campaign x format.")
def record_review(context: dg.OpExecutionContext, config: ReviewConfig) -> None:
    if config.format not in FORMAT_KEYS:
        raise dg.Failure(description=f"unknown format {config.format!r}; known: {', '.join(FORMAT_KEYS)}")
    partition = f"{config.campaign}|{config.format}"
    still_hash = latest_still_hash(context.instance, config.campaign, config.format)
    if still_hash is None:
        raise dg.Failure(description=f"no aspect_outpaint still for {partition} yet: nothing to review")
    decision = approvals.record(
        context.instance,
        config.campaign,
        config.format,
        approved=config.approve,
        still_hash=still_hash,
        by=config.reviewer or None,
        note=config.note,
    )
    context.log.info(f"{partition}: still {still_hash[:12]} {decision['approval']} by {decision['by']}")


@dg.job(description="Approve (or reject) a still before motion runs for campaigns with approval: required.")
def review_still() -> None:
    record_review()
