"""The campaign folder sensor: specs dropped in, edited or removed become partitions and spec events.

Each tick brings the spec index (:mod:`media_routes.spec_index`) and the instance up to date with
``campaigns/<id>/campaign.yaml`` (:func:`media_routes.defs.campaign_sync.sync_campaigns`):

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

An unchanged tick stats the folder and parses nothing. A large drop of new specs is taken in pages
under a per-tick budget (``MEDIA_ROUTES_SENSOR_TICK_BUDGET_S``, default 20 s), so a tick never nears
the code server's 60 s sensor timeout; the log says how many are still pending. The sensor compares
with the slice hashes recorded in the instance, not with its cursor, so a lost cursor, a lost index
or a restart never re-runs an unchanged campaign. The cursor only carries the last tick's counts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg

from media_routes.defs.campaign_sync import TickBudget, TickReport, sync_campaigns
from media_routes.defs.resources import CampaignCatalog
from media_routes.settings import folder_sensor_interval_s, sensor_tick_budget_s


def log_report(log: logging.Logger, report: TickReport) -> None:
    for line in report.log:
        (log.warning if line.startswith("skipping") else log.info)(line)
    log.info(report.summary())


@dg.sensor(
    name="campaign_folder_sensor",
    minimum_interval_seconds=folder_sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns campaign specs dropped into, edited in or removed from the campaigns folder into "
    "partitions and observations of each stage's slice of the spec; automation re-runs what changed.",
)
def campaign_folder_sensor(context: dg.SensorEvaluationContext, campaigns: CampaignCatalog) -> dg.SensorResult:
    report = sync_campaigns(
        context.instance, Path(campaigns.campaigns_dir), budget=TickBudget(seconds=sensor_tick_budget_s())
    )
    log_report(context.log, report)
    cursor = {
        "specs": report.listed,
        "parsed": report.parsed,
        "observed": sum(len(v) for v in report.observations.values()),
        "registered": len(report.registered),
        "pending": report.pending,
    }
    # the sensor requests no runs (automation does): the tick list in the UI shows this line as the tick's reason
    return dg.SensorResult(cursor=json.dumps(cursor, sort_keys=True), skip_reason=report.summary())
