"""Scheduled refreshes: each campaign's own cron, through one schedule (issue #6)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
import yaml

from media_routes.definitions import build_definitions
from media_routes.defs.campaign_sync import sync_campaigns
from media_routes.defs.resources import CampaignCatalog
from media_routes.defs.schedules import campaign_refresh_schedule, plan_refreshes, refresh_seed
from media_routes.lineage import latest_record
from media_routes.spec import SpecError, load_campaign
from media_routes.spec_index import parse_entry

UTC = dt.UTC
MONDAY_6_PARIS = dt.datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # 06:00 in Paris (UTC+1 in winter)


def _set_refresh(campaigns_dir: Path, cid: str, refresh: dict | None) -> None:  # type: ignore[type-arg]
    spec = campaigns_dir / cid / "campaign.yaml"
    data = yaml.safe_load(spec.read_text())
    data["refresh"] = refresh
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def weekly(campaigns_dir: Path) -> Path:
    _set_refresh(campaigns_dir, "shoe", {"cron": "0 6 * * 1", "timezone": "Europe/Paris", "new_seed": True})
    return campaigns_dir


def _plan(campaigns_dir: Path, at: dt.datetime, registered: bool = True) -> tuple[list[str], list[str]]:
    """The plan over index entries as the campaign folder sensor records them (synced = registered)."""
    entries = {f.name: parse_entry(f, synced=registered) for f in sorted(campaigns_dir.iterdir()) if f.is_dir()}
    due, log = plan_refreshes(entries, tick_time=at)
    return [r.campaign for r in due], log


def test_a_campaign_is_refreshed_once_per_cron_tick_in_its_time_zone(weekly: Path) -> None:
    due, log = _plan(weekly, MONDAY_6_PARIS)
    assert due == ["shoe"] and "2026-11-30T06:00:00+01:00" in log[0]
    # the schedule ticks every 5 minutes: the tick before and the tick after do not refresh again
    assert _plan(weekly, MONDAY_6_PARIS - dt.timedelta(minutes=5))[0] == []
    assert _plan(weekly, MONDAY_6_PARIS + dt.timedelta(minutes=5))[0] == []
    # 06:00 UTC is 07:00 in Paris: not the campaign's hour
    assert _plan(weekly, MONDAY_6_PARIS + dt.timedelta(hours=1))[0] == []
    # a cron minute between two schedule ticks is picked up by the next tick
    _set_refresh(weekly, "shoe", {"cron": "3 6 * * 1", "timezone": "Europe/Paris"})
    assert _plan(weekly, MONDAY_6_PARIS + dt.timedelta(minutes=5))[0] == ["shoe"]


def test_an_unregistered_campaign_waits_for_the_sensor(weekly: Path) -> None:
    due, log = _plan(weekly, MONDAY_6_PARIS, registered=False)
    assert due == []
    assert any("not registered" in line for line in log)


@pytest.mark.parametrize(
    ("refresh", "reason"),
    [({"cron": "0 25 * * *"}, "not a valid cron"), ({"cron": "0 6 * * 1", "timezone": "Mars/Olympus"}, "time zone")],
)
def test_a_bad_refresh_is_a_spec_error(campaigns_dir: Path, refresh: dict, reason: str) -> None:  # type: ignore[type-arg]
    _set_refresh(campaigns_dir, "tower", refresh)
    with pytest.raises(SpecError) as err:
        load_campaign(campaigns_dir / "tower" / "campaign.yaml")
    assert "refresh" in str(err.value) and reason in str(err.value)


@pytest.mark.integration
def test_the_schedule_runs_a_refresh_and_the_formats_follow(weekly: Path, instance, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    defs = build_definitions(campaigns_dir=str(weekly), media_root=str(tmp_path / "media"))
    report = sync_campaigns(instance, weekly)  # what a campaign folder sensor tick records
    assert report.registered == ["shoe", "tower"]
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=MONDAY_6_PARIS,
        resources={"campaigns": CampaignCatalog(campaigns_dir=str(weekly))},
    )
    requests = campaign_refresh_schedule(context)
    assert isinstance(requests, list) and len(requests) == 1
    request = requests[0]
    assert request.partition_key == "shoe" and request.run_key == "refresh:shoe:2026-11-30T06:00:00+01:00"
    seed = refresh_seed(dt.datetime(2026, 11, 30, 5, 0, tzinfo=UTC))
    assert request.run_config == {"ops": {"base_composition": {"config": {"seed": seed}}}}

    # what the daemon does with it: one run of the stills job for that campaign
    automation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    job = defs.resolve_job_def("campaign_stills")
    result = job.execute_in_process(
        run_config=request.run_config, partition_key="shoe", instance=instance, tags=request.tags
    )
    assert result.success
    base = latest_record(instance, "base_composition", "shoe")
    assert base is not None and base.asset_materialization is not None
    assert base.asset_materialization.metadata["seed"].value == seed
    # ... and its formats follow through automation
    follow = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=automation.cursor)
    assert {str(k) for k in follow.get_requested_partitions(dg.AssetKey("aspect_outpaint"))} == {
        "shoe|1x1",
        "shoe|9x16",
    }


def test_no_refresh_is_a_skip(campaigns_dir: Path, instance) -> None:  # type: ignore[no-untyped-def]
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=MONDAY_6_PARIS,
        resources={"campaigns": CampaignCatalog(campaigns_dir=str(campaigns_dir))},
    )
    assert isinstance(campaign_refresh_schedule(context), dg.SkipReason)
