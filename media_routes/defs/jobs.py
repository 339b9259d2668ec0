"""Asset jobs: one per partitioning, so the UI can launch and backfill each half of the graph."""

import dagster as dg

from media_routes.stages import CAMPAIGN_STAGES, FORMAT_STAGES

CAMPAIGN_JOB = "campaign_stills"
FORMAT_JOB = "format_deliverables"

campaign_stills_job = dg.define_asset_job(
    CAMPAIGN_JOB,
    selection=dg.AssetSelection.assets(*CAMPAIGN_STAGES),
    description="Stages 1-4 for one campaign: base composition, lighting, fixes, upscale.",
)

format_deliverables_job = dg.define_asset_job(
    FORMAT_JOB,
    selection=dg.AssetSelection.assets(*FORMAT_STAGES),
    description="Stages 5-6 for one campaign x format: outpainted still and motion.",
)

JOBS = [campaign_stills_job, format_deliverables_job]
