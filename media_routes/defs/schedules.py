"""Scheduled campaign refreshes: each spec may carry its own cron (``refresh:`` in campaign.yaml).

Dagster's ``build_schedule_from_partitioned_job`` rejects dynamic partitions, and one schedule per
campaign would need a code reload whenever a spec changes. So one ``@schedule`` ticks every
``TICK_MINUTES`` minutes and requests the stills (stages 1-4) of every campaign whose own cron
fired since the previous tick. Its formats follow through declarative automation
(:mod:`media_routes.defs.automation`), motion behind approval where the spec requires it.

The schedule reads the spec index kept by the campaign folder sensor (:mod:`media_routes.spec_index`),
never the YAML, and looks only at campaigns whose spec has a ``refresh:``; a campaign the sensor has not
registered yet waits for it. The run key is the campaign and its cron tick, so a tick evaluated twice
requests one run.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._utils.schedules import get_latest_completed_cron_tick

from media_routes.defs.jobs import campaign_stills_job
from media_routes.defs.resources import CampaignCatalog
from media_routes.spec import SEED_LIMIT
from media_routes.spec_index import Entry, SpecIndex

TICK_MINUTES = 5
TICK_CRON = f"*/{TICK_MINUTES} * * * *"


@dataclass(frozen=True)
class Refresh:
    campaign: str
    cron_tick: dt.datetime
    seed: int | None  # a new base seed, or None to keep the spec's

    @property
    def run_key(self) -> str:
        return f"refresh:{self.campaign}:{self.cron_tick.isoformat()}"


def refresh_seed(cron_tick: dt.datetime) -> int:
    """A new, reproducible base seed per cron tick (so a re-evaluated tick gives the same seed)."""
    return int(cron_tick.timestamp()) % SEED_LIMIT


def plan_refreshes(
    entries: Mapping[str, Entry],
    *,
    tick_time: dt.datetime,
    interval: dt.timedelta = dt.timedelta(minutes=TICK_MINUTES),
) -> tuple[list[Refresh], list[str]]:
    """Campaigns whose cron fired in ``(tick_time - interval, tick_time]``, and a log of the decisions.

    Only entries with a ``refresh`` are looked at; an invalid or removed spec is not refreshed, a spec the
    campaign folder sensor has not registered yet waits for it."""
    due: list[Refresh] = []
    log: list[str] = []
    for cid, entry in sorted(entries.items()):
        refresh = entry.refresh
        if refresh is None or entry.deleted:
            continue
        last = get_latest_completed_cron_tick(refresh["cron"], tick_time, refresh["timezone"])
        if last <= tick_time - interval:
            continue
        if entry.error is not None:
            log.append(f"{cid}: refresh due at {last.isoformat()} skipped: the spec is invalid ({entry.error[:200]})")
            continue
        if not entry.synced:
            log.append(f"{cid}: refresh due at {last.isoformat()} but the campaign sensor has not registered it yet")
            continue
        due.append(Refresh(cid, last, refresh_seed(last) if refresh["new_seed"] else None))
        log.append(f"{cid}: refresh for cron tick {last.isoformat()} ({refresh['cron']} {refresh['timezone']})")
    return due, log


@dg.schedule(
    name="campaign_refresh",
    cron_schedule=TICK_CRON,
    job=campaign_stills_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Every {TICK_MINUTES} minutes: re-makes the stills of each campaign whose own `refresh.cron` "
    "fired since the last tick; formats and motion follow through automation.",
)
def campaign_refresh_schedule(
    context: dg.ScheduleEvaluationContext, campaigns: CampaignCatalog
) -> list[dg.RunRequest] | dg.SkipReason:
    started = time.perf_counter()
    index = SpecIndex.load(context.instance.daemon_cursor_storage, Path(campaigns.campaigns_dir))
    loaded = time.perf_counter()
    with_refresh = {cid: e for cid, e in index.entries.items() if e.refresh is not None}
    tick_time = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    due, log = plan_refreshes(with_refresh, tick_time=tick_time)
    for line in log:
        context.log.info(line)
    if index.generation is None:
        context.log.info("the spec index is empty: the campaign folder sensor has not synced the campaigns yet")
    context.log.info(
        f"{len(with_refresh)} of {len(index.entries)} indexed campaigns have a refresh; {len(due)} due; "
        f"index read in {loaded - started:.2f}s, planned in {time.perf_counter() - loaded:.2f}s"
    )
    if not due:
        return dg.SkipReason("no campaign refresh due")
    return [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.campaign,
            run_config={"ops": {"base_composition": {"config": {"seed": r.seed}}}} if r.seed is not None else {},
            tags={
                "media_routes/trigger": "campaign_refresh",
                "media_routes/cron_tick": r.cron_tick.isoformat(),
            },
        )
        for r in due
    ]
