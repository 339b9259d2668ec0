"""The campaign folder sensor: specs dropped in, edited or removed become partitions and runs.

Each tick loads every ``campaigns/<id>/campaign.yaml``:

* a **new** spec becomes a ``campaign`` partition and its stills (stages 1-4) are requested; its
  formats' stages 5-6 follow through declarative automation once the stills exist
  (:mod:`media_routes.defs.automation`), so no run reads a missing input;
* an **edited** spec re-runs from the first stage whose slice of the spec changed
  (:mod:`media_routes.spec_slices`): editing a fix re-runs ``inpaint_fix`` and what follows, not
  ``base_composition``; formats added to the list are made by automation;
* an **invalid** spec is reported in the sensor's log (file, field, reason) and skipped; the other
  campaigns go on, and its last good state is kept;
* a **deleted** spec keeps its partition and history, and is no longer acted on;
* with ``approval: required``, a format edit re-runs only the still; motion follows through
  automation once that still is approved (``media-routes approve`` or the ``review_still`` job).

What the sensor has seen lives in its cursor (JSON): per campaign the slice hashes and the formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from media_routes.defs.jobs import CAMPAIGN_STAGES, FORMAT_STAGES, campaign_stills_job, format_deliverables_job
from media_routes.defs.partitions import campaign_format_key, campaign_partitions
from media_routes.defs.resources import CampaignCatalog
from media_routes.spec import Campaign, SpecError, load_all
from media_routes.spec_slices import earliest_changed, stage_slice_hashes


@dataclass
class PlannedRequest:
    job: str
    partition: str
    stages: list[str]
    reason: str
    key: str


@dataclass
class TickPlan:
    state: dict[str, Any]
    new_partitions: list[str] = field(default_factory=list)
    requests: list[PlannedRequest] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


def _campaign_request(cid: str, stages: list[str], reason: str, version: str) -> PlannedRequest:
    return PlannedRequest(campaign_stills_job.name, cid, stages, reason, f"{cid}:{stages[0]}:{version}")


def _format_requests(
    cid: str, formats: list[str], stages: list[str], reason: str, version: str, *, approval: str = "auto"
) -> list[PlannedRequest]:
    if approval == "required":
        # motion waits for a human: only the still is made now; an approval brings motion (plan_tick)
        stages = [s for s in stages if s != "motion"]
        if not stages:
            return []
    return [
        PlannedRequest(
            format_deliverables_job.name,
            str(campaign_format_key(cid, f)),
            stages,
            reason,
            f"{cid}|{f}:{stages[0]}:{version}",
        )
        for f in formats
    ]


def plan_tick(
    state: dict[str, Any],
    good: dict[str, Campaign],
    bad: list[SpecError],
    *,
    registered: Callable[[str], bool],
) -> TickPlan:
    """Decide one tick. Pure apart from ``registered`` (is the partition known), so it can be tested
    without a daemon. What follows a requested run (formats after stills, motion after approval) is
    left to declarative automation (:mod:`media_routes.defs.automation`)."""
    state = json.loads(json.dumps(state))  # work on a copy
    plan = TickPlan(state=state)
    for exc in bad:
        plan.log.append(f"skipping an invalid campaign spec:\n{exc}")
    for cid, campaign in good.items():
        hashes = stage_slice_hashes(campaign)
        version = hashes["motion"] + hashes["base_composition"][:4]
        formats = list(campaign.spec.formats)
        entry = state.get(cid)
        if entry is None or entry.get("deleted"):
            if not registered(cid):
                plan.new_partitions.append(cid)
            plan.requests.append(_campaign_request(cid, CAMPAIGN_STAGES, "new campaign spec", version))
            state[cid] = {"hashes": hashes, "formats": formats}
            plan.log.append(f"{cid}: new spec; stills requested, {len(formats)} format(s) follow through automation")
            continue
        first = earliest_changed(entry["hashes"], hashes)
        added = [f for f in formats if f not in entry["formats"]]
        if first in CAMPAIGN_STAGES:
            stages = CAMPAIGN_STAGES[CAMPAIGN_STAGES.index(first) :]
            plan.requests.append(_campaign_request(cid, stages, f"spec edit touches {first}", version))
            plan.log.append(f"{cid}: spec edit touches {first}; re-running {', '.join(stages)}, formats follow")
        elif first in FORMAT_STAGES:
            stages = FORMAT_STAGES[FORMAT_STAGES.index(first) :]
            kept = [f for f in formats if f not in added]
            plan.requests += _format_requests(
                cid, kept, stages, f"spec edit touches {first}", version, approval=campaign.spec.approval
            )
            plan.log.append(f"{cid}: spec edit touches {first}; re-running {', '.join(stages)} for {kept}")
        if added:
            # the format's partitions have been waiting since the stills were made: automation runs them
            plan.log.append(f"{cid}: format(s) added: {', '.join(added)}; automation makes them")
        entry["hashes"], entry["formats"] = hashes, formats
    # specs that disappeared: keep partitions and history, stop acting on them
    invalid_ids = {Path(p.file).parent.name for exc in bad for p in exc.problems}
    for cid, entry in state.items():
        if cid not in good and cid not in invalid_ids and not entry.get("deleted"):
            entry["deleted"] = True
            plan.log.append(f"{cid}: spec removed; partition and history kept, no longer scheduled")
    return plan


@dg.sensor(
    name="campaign_folder_sensor",
    jobs=[campaign_stills_job, format_deliverables_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns campaign specs dropped into, edited in or removed from the campaigns folder into "
    "partitions and runs of exactly the stages an edit touches.",
)
def campaign_folder_sensor(context: dg.SensorEvaluationContext, campaigns: CampaignCatalog) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {}
    good, bad = load_all(Path(campaigns.campaigns_dir))
    instance = context.instance
    plan = plan_tick(
        state,
        good,
        bad,
        registered=lambda cid: instance.has_dynamic_partition(campaign_partitions.name, cid),
    )
    for line in plan.log:
        (context.log.warning if line.startswith("skipping") else context.log.info)(line)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=r.key,
                job_name=r.job,
                partition_key=r.partition,
                asset_selection=[dg.AssetKey(s) for s in r.stages],
                tags={"media_routes/trigger": "campaign_folder_sensor", "media_routes/reason": r.reason[:60]},
            )
            for r in plan.requests
        ],
        dynamic_partitions_requests=[campaign_partitions.build_add_request(plan.new_partitions)]
        if plan.new_partitions
        else [],
        cursor=json.dumps(plan.state, sort_keys=True),
    )
