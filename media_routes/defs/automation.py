"""Declarative automation: each stage follows its inputs, and only where the campaign wants it.

* stages 1-4 are ``eager()``: when an input gets a new materialization (a refresh, a re-roll of one
  stage from the UI) or their slice of the spec a new observation (a new or edited spec, see
  :mod:`media_routes.defs.campaign_specs`), they re-run for that campaign, together with what
  follows them in one run. Updates made in the same run are ignored, so a run that already covers
  the chain is not repeated.
* ``aspect_outpaint`` and ``motion`` are ``eager()`` narrowed by :class:`WantedByCampaign`: the
  format must be listed in the campaign's spec (the format dimension is static, but a campaign
  delivers only its own formats); ``motion`` also needs ``approval: auto`` or an approval of exactly
  the current still. A format waiting for approval stays pending and runs on the first tick after
  ``media-routes approve`` (or the ``review_still`` job) records the approval.

Those conditions read the spec index (:mod:`media_routes.spec_index`, kept by the campaign folder sensor;
a campaign the index does not hold yet is read from its folder), which is Python the daemon cannot run, so
the sensor that
evaluates them runs in the code location (``use_user_code_server=True``) and is RUNNING by default:
nothing has to be switched on in the UI (``MEDIA_ROUTES_AUTOMATION=stopped`` makes it start STOPPED, for an
environment driven only by backfills and jobs).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from media_routes import approvals
from media_routes.lineage import latest_still_hash
from media_routes.settings import sensor_interval_s
from media_routes.spec import SPEC_FILENAME
from media_routes.spec_index import Entry, SpecIndex, parse_entry
from media_routes.stages import DECLARED, split_campaign_format


def _still_may_move(instance: dg.DagsterInstance, campaign: str, fmt: str) -> bool:
    still_hash = latest_still_hash(instance, campaign, fmt)
    if still_hash is None:
        return False
    return approvals.blocking_reason(instance, campaign, fmt, still_hash) is None


class WantedByCampaign(dg.AutomationCondition):
    """True for the campaign x format partitions the campaign's spec asks for.

    With ``motion=True`` also requires that the still may go to motion: the campaign's approval is
    ``auto``, or the latest ``aspect_outpaint`` still of that partition is approved.
    """

    def __init__(self, campaigns_dir: str, motion: bool = False) -> None:
        self.campaigns_dir = campaigns_dir
        self.motion = motion
        super().__init__()

    @property
    def name(self) -> str:
        return "approved_and_in_campaign_spec" if self.motion else "format_in_campaign_spec"

    @property
    def description(self) -> str:
        return "format listed in the campaign spec" + (" and still approved (if required)" if self.motion else "")

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty:
            return dg.AutomationResult(context, true_subset=candidates)
        campaigns_dir = Path(self.campaigns_dir)
        instance = context.asset_graph_view.instance
        entries = SpecIndex.load(instance.daemon_cursor_storage, campaigns_dir).entries
        unindexed: dict[str, Entry | None] = {}

        def entry_of(cid: str) -> Entry | None:
            if cid in entries:
                return entries[cid]
            if cid not in unindexed:  # not synced by the sensor yet (or no sensor: tests, the CLI)
                folder = campaigns_dir / cid
                unindexed[cid] = parse_entry(folder) if (folder / SPEC_FILENAME).is_file() else None
            return unindexed[cid]

        wanted = set()
        for key in candidates.expensively_compute_partition_keys():
            cid, fmt = split_campaign_format(key)
            entry = entry_of(cid)
            if entry is None or entry.error is not None or entry.deleted or fmt not in entry.formats:
                continue
            if self.motion and entry.approval == "required" and not _still_may_move(instance, cid, fmt):
                continue
            wanted.add(key)
        return dg.AutomationResult(context, true_subset=candidates.compute_intersection_with_partition_keys(wanted))


def stage_conditions(campaigns_dir: str) -> dict[str, dg.AutomationCondition | None]:
    """The automation condition of each stage. A stage's inputs are the stage before it and its own
    slice of the spec (``campaign_spec/<stage>``, observed by the campaign folder sensor)."""
    ac = dg.AutomationCondition
    # eager() acts on *newly* missing partitions; a partition that was already registered when this sensor
    # first evaluated (the folder sensor ticked first, on a fresh instance) would never be made. On the first
    # evaluation, missing partitions whose inputs are there count too.
    first_time = (
        ac.initial_evaluation() & ac.missing() & ~ac.any_deps_missing() & ~ac.any_deps_in_progress() & ~ac.in_progress()
    )
    eager = (ac.eager() | first_time).with_label("eager (or missing at the first evaluation)")
    by_kind: dict[str, dg.AutomationCondition] = {
        "eager": eager,
        "eager_in_spec_formats": (eager & WantedByCampaign(campaigns_dir)).with_label("eager, formats of the spec"),
        "eager_in_spec_formats_approved": (eager & WantedByCampaign(campaigns_dir, motion=True)).with_label(
            "eager, formats of the spec, approved"
        ),
    }
    return {stage.name: by_kind[stage.automation] for stage in DECLARED}


def with_automation(assets: list[dg.AssetsDefinition], campaigns_dir: str) -> list[dg.AssetsDefinition]:
    """The stage assets with their automation conditions, reading specs from ``campaigns_dir``."""
    conditions = stage_conditions(campaigns_dir)
    return [
        a.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=conditions[spec.key.path[-1]]))
        for a in assets
    ]


ENV_AUTOMATION = "MEDIA_ROUTES_AUTOMATION"  # "stopped": the sensor starts STOPPED (runs only from backfills / jobs)


def _automation_default_status() -> dg.DefaultSensorStatus:
    value = os.environ.get(ENV_AUTOMATION, "running").strip().lower() or "running"
    if value not in ("running", "stopped"):
        raise ValueError(f"{ENV_AUTOMATION} must be 'running' or 'stopped', not {value!r}")
    return dg.DefaultSensorStatus.RUNNING if value == "running" else dg.DefaultSensorStatus.STOPPED


automation_sensor = dg.AutomationConditionSensorDefinition(
    "stage_automation",
    target=dg.AssetSelection.all(),
    default_status=_automation_default_status(),
    minimum_interval_seconds=sensor_interval_s(),
    use_user_code_server=True,
    description="Evaluates the stages' automation conditions: each stage follows its inputs; formats only "
    "where the campaign lists them; motion only after approval where the campaign requires it.",
)
