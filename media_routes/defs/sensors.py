"""The campaign folder sensor: specs dropped in, edited or removed become partitions and runs.

Each tick loads every ``campaigns/<id>/campaign.yaml``:

* a **new** spec becomes a ``campaign`` partition; its stills (stages 1-4) are requested at once and
  its formats' stages 5-6 once those stills exist (a later tick), so no run reads a missing input;
* an **edited** spec re-runs from the first stage whose slice of the spec changed
  (:mod:`media_routes.spec_slices`): editing a fix re-runs ``inpaint_fix`` and what follows, not
  ``base_composition``; formats added to the list get their stages 5-6;
* an **invalid** spec is reported in the sensor's log (file, field, reason) and skipped; the other
  campaigns go on, and its last good state is kept;
* a **deleted** spec keeps its partition and history, and is no longer acted on;
* with ``approval: required``, only the stills are made; once a still is approved (``media-routes
  approve`` or the ``review_still`` job) the next tick requests its motion, and again after a new
  still is approved.

What the sensor has seen lives in its cursor (JSON): per campaign the slice hashes, the formats and
any format runs waiting for the stills.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from media_routes import approvals
from media_routes.defs.jobs import CAMPAIGN_STAGES, FORMAT_STAGES, campaign_stills_job, format_deliverables_job
from media_routes.defs.partitions import campaign_format_key, campaign_partitions
from media_routes.defs.resources import CampaignCatalog
from media_routes.lineage import latest_record
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
    stills_since: Callable[[str, float], bool],
    approved_without_motion: Callable[[str, str], str | None] = lambda cid, fmt: None,
    now: float,
) -> TickPlan:
    """Decide one tick. Pure apart from the two callables (is the partition registered; were the
    campaign's stills materialized after a time), so it can be tested without a daemon."""
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
            state[cid] = {
                "hashes": hashes,
                "formats": formats,
                "pending": {"formats": formats, "stages": FORMAT_STAGES, "since": now},
            }
            plan.log.append(f"{cid}: new spec; stills requested, {len(formats)} format(s) follow")
            continue
        first = earliest_changed(entry["hashes"], hashes)
        added = [f for f in formats if f not in entry["formats"]]
        if first in CAMPAIGN_STAGES:
            stages = CAMPAIGN_STAGES[CAMPAIGN_STAGES.index(first) :]
            plan.requests.append(_campaign_request(cid, stages, f"spec edit touches {first}", version))
            entry["pending"] = {"formats": formats, "stages": FORMAT_STAGES, "since": now}
            plan.log.append(f"{cid}: spec edit touches {first}; re-running {', '.join(stages)} then its formats")
        elif entry.get("pending") and (first in FORMAT_STAGES or added):
            # stills are still on their way: the waiting format runs will pick the edit up
            entry["pending"]["formats"] = formats
            plan.log.append(f"{cid}: spec edit for the formats; folded into the runs waiting for the stills")
        elif first in FORMAT_STAGES or added:
            if first in FORMAT_STAGES:
                stages = FORMAT_STAGES[FORMAT_STAGES.index(first) :]
                kept = [f for f in formats if f not in added]
                plan.requests += _format_requests(
                    cid, kept, stages, f"spec edit touches {first}", version, approval=campaign.spec.approval
                )
                plan.log.append(f"{cid}: spec edit touches {first}; re-running {', '.join(stages)} for {kept}")
            if added:
                plan.requests += _format_requests(
                    cid, added, FORMAT_STAGES, "format added to the spec", version, approval=campaign.spec.approval
                )
                plan.log.append(f"{cid}: format(s) added: {', '.join(added)}")
        entry["hashes"], entry["formats"] = hashes, formats
    # format runs waiting for their campaign's stills
    for cid, entry in state.items():
        pending = entry.get("pending")
        if cid in good and pending and stills_since(cid, pending["since"]):
            version = entry["hashes"]["motion"] + entry["hashes"]["base_composition"][:4]
            plan.requests += _format_requests(
                cid, pending["formats"], pending["stages"], "stills ready", version, approval=good[cid].spec.approval
            )
            plan.log.append(f"{cid}: stills ready; requesting {', '.join(pending['formats'])}")
            entry["pending"] = None
    # approved stills whose motion has not been made from them yet
    for cid, campaign in good.items():
        if campaign.spec.approval != "required":
            continue
        for fmt in campaign.spec.formats:
            still_hash = approved_without_motion(cid, fmt)
            if still_hash:
                key = str(campaign_format_key(cid, fmt))
                plan.requests.append(
                    PlannedRequest(
                        format_deliverables_job.name,
                        key,
                        ["motion"],
                        "still approved",
                        f"{key}:approved:{still_hash[:16]}",
                    )
                )
                plan.log.append(f"{key}: still approved; motion requested")
    # specs that disappeared: keep partitions and history, stop acting on them
    invalid_ids = {Path(p.file).parent.name for exc in bad for p in exc.problems}
    for cid, entry in state.items():
        if cid not in good and cid not in invalid_ids and not entry.get("deleted"):
            entry["deleted"] = True
            entry["pending"] = None
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

    def stills_since(cid: str, since: float) -> bool:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("k_upscale"), asset_partitions=[cid]), limit=1
        ).records
        return bool(records) and records[0].timestamp > since

    def approved_without_motion(cid: str, fmt: str) -> str | None:
        """The hash of an approved still that no motion has been made from yet, else None."""
        key = str(campaign_format_key(cid, fmt))
        still = latest_record(instance, "aspect_outpaint", key)
        if still is None or still.asset_materialization is None:
            return None
        still_hash = str(still.asset_materialization.metadata["output_hash"].value)
        if approvals.blocking_reason(instance, cid, fmt, still_hash) is not None:
            return None
        made = latest_record(instance, "motion", key)
        if made is not None and made.asset_materialization is not None:
            inputs = made.asset_materialization.metadata["input_hashes"].value
            if inputs.get("aspect_outpaint") == still_hash:  # type: ignore[union-attr]
                return None
        return still_hash

    plan = plan_tick(
        state,
        good,
        bad,
        registered=lambda cid: instance.has_dynamic_partition(campaign_partitions.name, cid),
        stills_since=stills_since,
        approved_without_motion=approved_without_motion,
        now=time.time(),
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
