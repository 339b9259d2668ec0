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

from collections.abc import Iterator, Sequence

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.events import DagsterEventType

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


QUERY_CHUNK = 500  # partitions per "latest observation" query


def latest_slice_hashes(instance: dg.DagsterInstance, campaigns: Sequence[str]) -> dict[str, dict[str, str]]:
    """Campaign -> stage -> the slice hash last recorded, for these campaigns: one query per stage (per
    500 campaigns), not one per campaign and stage."""
    out: dict[str, dict[str, str]] = {}
    for stage in STAGES:
        for i in range(0, len(campaigns), QUERY_CHUNK):
            tags = instance.event_log_storage.get_latest_tags_by_partition(
                slice_key(stage),
                DagsterEventType.ASSET_OBSERVATION,
                [DATA_VERSION_TAG],
                asset_partitions=list(campaigns[i : i + QUERY_CHUNK]),
            )
            for cid, t in tags.items():
                if DATA_VERSION_TAG in t:
                    out.setdefault(cid, {})[stage] = t[DATA_VERSION_TAG]
    return out


def queries_for(campaigns: Sequence[str]) -> int:
    """How many queries :func:`latest_slice_hashes` makes for that many campaigns."""
    return len(STAGES) * -(-len(campaigns) // QUERY_CHUNK)


def last_observed(instance: dg.DagsterInstance, campaign_id: str, stage: str) -> str | None:
    """The slice hash last recorded for this campaign and stage, or None."""
    return latest_slice_hashes(instance, [campaign_id]).get(campaign_id, {}).get(stage)


def changed_slices(instance: dg.DagsterInstance, campaign: Campaign) -> dict[str, str]:
    """Stage -> new slice hash, for the slices whose hash differs from the last observation."""
    last = latest_slice_hashes(instance, [campaign.id]).get(campaign.id, {})
    return {s: h for s, h in stage_slice_hashes(campaign).items() if last.get(s) != h}


def slice_observations(campaign_id: str, changed: dict[str, str], *, source: str) -> list[dg.AssetObservation]:
    return [
        dg.AssetObservation(
            asset_key=slice_key(stage),
            partition=campaign_id,
            tags={DATA_VERSION_TAG: h},
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
