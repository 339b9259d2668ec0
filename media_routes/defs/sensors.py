"""The campaign folder sensor: specs dropped in, edited or removed become partitions and spec events.

Each tick loads every ``campaigns/<id>/campaign.yaml``:

* a **new** spec becomes a ``campaign`` partition, and each of its six spec slices is observed
  (``campaign_spec/<stage>``, :mod:`media_routes.defs.campaign_specs`); declarative automation
  (:mod:`media_routes.defs.automation`) then makes the stills in one run and, once they exist, the
  formats the spec lists, so no run reads a missing input;
* an **edited** spec gets a new observation for each slice whose hash changed: editing a fix
  changes only ``campaign_spec/inpaint_fix``, so ``inpaint_fix`` and what follows it turn stale and
  are re-run, not ``base_composition``; a format added to the list is made by automation;
* an **invalid** spec is reported in the sensor's log (file, field, reason) and skipped; the other
  campaigns go on, and its last good state is kept;
* a **deleted** spec keeps its partition and history, and is no longer acted on;
* with ``approval: required``, motion follows only an approved still (automation).

The sensor compares with the slice hashes last recorded in the instance, not only with its
cursor, so a lost cursor or a restart never re-runs an unchanged campaign. The cursor (JSON)
remembers which campaigns it has seen, to report removals once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from media_routes.defs.campaign_specs import last_observed, slice_observations
from media_routes.defs.partitions import campaign_partitions
from media_routes.defs.resources import CampaignCatalog
from media_routes.settings import sensor_interval_s
from media_routes.spec import Campaign, SpecError, load_all
from media_routes.spec_slices import stage_slice_hashes
from media_routes.stages import CAMPAIGN_DIMENSION, STAGES


@dataclass
class TickPlan:
    state: dict[str, Any]
    new_partitions: list[str] = field(default_factory=list)
    observations: dict[str, dict[str, str]] = field(default_factory=dict)  # campaign -> stage -> hash
    log: list[str] = field(default_factory=list)


def plan_tick(
    state: dict[str, Any],
    good: dict[str, Campaign],
    bad: list[SpecError],
    *,
    registered: Callable[[str], bool],
    observed: Callable[[str, str], str | None],
) -> TickPlan:
    """Decide one tick. Pure apart from the callables (is the partition known; the slice hash last
    observed for a campaign and stage), so it can be tested without a daemon."""
    state = json.loads(json.dumps(state))  # work on a copy
    plan = TickPlan(state=state)
    for exc in bad:
        plan.log.append(f"skipping an invalid campaign spec:\n{exc}")
    for cid, campaign in good.items():
        hashes = stage_slice_hashes(campaign)
        changed = {s: h for s, h in hashes.items() if observed(cid, s) != h}
        formats = list(campaign.spec.formats)
        entry = state.get(cid) or {}
        if not registered(cid):
            plan.new_partitions.append(cid)
        if changed:
            plan.observations[cid] = changed
            first = next(s for s in STAGES if s in changed)
            if len(changed) == len(STAGES):
                plan.log.append(f"{cid}: new spec; automation makes its stills, then {', '.join(formats)}")
            else:
                plan.log.append(
                    f"{cid}: spec edit touches {', '.join(changed)}; automation re-runs from {first} onward"
                )
        added = [f for f in formats if entry.get("formats") is not None and f not in entry["formats"]]
        if added:
            plan.log.append(f"{cid}: format(s) added: {', '.join(added)}; automation makes them")
        state[cid] = {"formats": formats}
    # specs that disappeared: keep partitions and history, stop acting on them
    invalid_ids = {Path(p.file).parent.name for exc in bad for p in exc.problems}
    for cid, entry in state.items():
        if cid not in good and cid not in invalid_ids and not entry.get("deleted"):
            entry["deleted"] = True
            plan.log.append(f"{cid}: spec removed; partition and history kept, no longer scheduled")
    return plan


@dg.sensor(
    name="campaign_folder_sensor",
    minimum_interval_seconds=sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns campaign specs dropped into, edited in or removed from the campaigns folder into "
    "partitions and observations of each stage's slice of the spec; automation re-runs what changed.",
)
def campaign_folder_sensor(context: dg.SensorEvaluationContext, campaigns: CampaignCatalog) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {}
    good, bad = load_all(Path(campaigns.campaigns_dir))
    instance = context.instance
    plan = plan_tick(
        state,
        good,
        bad,
        registered=lambda cid: instance.has_dynamic_partition(CAMPAIGN_DIMENSION, cid),
        observed=lambda cid, stage: last_observed(instance, cid, stage),
    )
    for line in plan.log:
        (context.log.warning if line.startswith("skipping") else context.log.info)(line)
    events = [
        event
        for cid, changed in plan.observations.items()
        for event in slice_observations(cid, changed, source="campaign_folder_sensor")
    ]
    return dg.SensorResult(
        asset_events=events,
        dynamic_partitions_requests=[campaign_partitions.build_add_request(plan.new_partitions)]
        if plan.new_partitions
        else [],
        cursor=json.dumps(plan.state, sort_keys=True),
    )
