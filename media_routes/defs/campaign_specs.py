"""Each stage's slice of the campaign spec, as an external asset Dagster can see.

``campaign_spec/<stage>`` (partitioned by campaign) stands for the part of ``campaign.yaml`` (and
the files it names) that ``<stage>`` reads: :mod:`media_routes.spec_slices`. Its data version is
the slice's hash. Every stage depends on its own slice, so:

* an edit shows up in the UI as staleness: editing one inpaint fix makes ``inpaint_fix`` (and then
  what follows) stale, "campaign_spec/inpaint_fix has a new data version", not ``base_composition``;
* declarative automation re-runs exactly the stages whose slice changed, and what follows them.

The slices are observed (``AssetObservation`` with ``dagster/data_version``) by the campaign
folder sensor and by the command line before it runs a campaign, only when the hash differs from
the last one recorded, so an unchanged spec never re-runs anything.
"""

from collections.abc import Iterator

import dagster as dg

from media_routes.defs.partitions import campaign_partitions
from media_routes.defs.resources import CampaignCatalog
from media_routes.spec import Campaign
from media_routes.spec_slices import SLICE_FIELDS, stage_slice_hashes
from media_routes.stages import STAGES

GROUP = "campaign_specs"


def slice_key(stage: str) -> dg.AssetKey:
    return dg.AssetKey(["campaign_spec", stage])


SLICE_SPECS = [
    dg.AssetSpec(
        slice_key(stage),
        partitions_def=campaign_partitions,
        group_name=GROUP,
        owners=["team:creative-ops"],
        kinds={"yaml"},
        description=f"The part of campaign.yaml that `{stage}` reads: "
        + ", ".join(f"`{f}`" for f in SLICE_FIELDS[stage])
        + f", `route.{stage}` and the files they name. Data version = hash of that slice; observed by "
        "campaign_folder_sensor when it changes.",
    )
    for stage in STAGES
]


@dg.multi_observable_source_asset(
    name="campaign_spec",
    specs=SLICE_SPECS,
    description="Observes each stage's slice of one campaign's spec (the campaign folder sensor does "
    "this on every change; running it by hand re-records the current hashes).",
)
def campaign_spec(context: dg.AssetExecutionContext, campaigns: CampaignCatalog) -> Iterator[dg.ObserveResult]:
    campaign = campaigns.load(str(context.partition_key))
    for stage, h in stage_slice_hashes(campaign).items():
        yield dg.ObserveResult(asset_key=slice_key(stage), data_version=dg.DataVersion(h), metadata={"slice_hash": h})


SPEC_SLICE_ASSETS = [campaign_spec]


def last_observed(instance: dg.DagsterInstance, campaign_id: str, stage: str) -> str | None:
    """The slice hash last recorded for this campaign and stage, or None."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=slice_key(stage), asset_partitions=[campaign_id]), limit=1
    ).records
    if not records or records[0].asset_observation is None:
        return None
    return (records[0].asset_observation.tags or {}).get("dagster/data_version")


def changed_slices(instance: dg.DagsterInstance, campaign: Campaign) -> dict[str, str]:
    """Stage -> new slice hash, for the slices whose hash differs from the last observation."""
    hashes = stage_slice_hashes(campaign)
    return {s: h for s, h in hashes.items() if last_observed(instance, campaign.id, s) != h}


def slice_observations(campaign_id: str, changed: dict[str, str], *, source: str) -> list[dg.AssetObservation]:
    return [
        dg.AssetObservation(
            asset_key=slice_key(stage),
            partition=campaign_id,
            tags={"dagster/data_version": h},
            metadata={"slice_hash": h, "observed_by": source},
        )
        for stage, h in changed.items()
    ]


def observe_campaign(instance: dg.DagsterInstance, campaign: Campaign, *, source: str) -> list[str]:
    """Record the changed slices of one campaign directly (used outside sensors); returns the stages."""
    changed = changed_slices(instance, campaign)
    for event in slice_observations(campaign.id, changed, source=source):
        instance.report_runless_asset_event(event)
    return list(changed)
