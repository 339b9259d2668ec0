"""The campaign folder sensor and the automation that follows it: new, edited, invalid and deleted specs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import yaml

from media_routes.definitions import build_definitions
from media_routes.defs.resources import CampaignCatalog
from media_routes.defs.sensors import campaign_folder_sensor
from media_routes.pipeline import materialize_stages


def _tick(instance: dg.DagsterInstance, campaigns_dir: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"campaigns": CampaignCatalog(campaigns_dir=str(campaigns_dir))}
    )
    return campaign_folder_sensor(context)


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with a tick's partition requests."""
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def _requests(result: dg.SensorResult) -> list[tuple[str, str, list[str]]]:
    return sorted(
        (r.job_name, r.partition_key, [k.to_user_string() for k in r.asset_selection or []])
        for r in result.run_requests or []
    )


class Automation:
    """Ticks of the automation sensor, evaluated in-process as the daemon would (cursor kept)."""

    def __init__(self, instance: dg.DagsterInstance, campaigns_dir: Path, media_root: Path) -> None:
        self.instance = instance
        self.defs = build_definitions(campaigns_dir=str(campaigns_dir), media_root=str(media_root))
        self.cursor = None

    def tick(self) -> dict[str, list[str]]:
        """Requested partitions per stage (stages with none left out)."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        out = {}
        for stage in [*STILLS, "aspect_outpaint", "motion"]:
            keys = sorted(str(k) for k in result.get_requested_partitions(dg.AssetKey(stage)))
            if keys:
                out[stage] = keys
        return out


def _edit(campaigns_dir: Path, cid: str, mutate) -> None:  # type: ignore[no-untyped-def]
    spec = campaigns_dir / cid / "campaign.yaml"
    data = yaml.safe_load(spec.read_text())
    mutate(data)
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


STILLS = ["base_composition", "lighting_iteration", "inpaint_fix", "k_upscale"]


def test_new_specs_become_partitions_then_stills_then_formats(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    first = _tick(instance, campaigns_dir, None)
    assert sorted(first.dynamic_partitions_requests[0].partition_keys) == ["shoe", "tower"]
    assert _requests(first) == [("campaign_stills", "shoe", STILLS), ("campaign_stills", "tower", STILLS)]
    _apply(instance, first)

    # nothing new until the stills exist: no format run may read a missing input
    assert automation.tick() == {}
    assert _requests(_tick(instance, campaigns_dir, first.cursor)) == []
    assert materialize_stages(instance, resources, STILLS, "shoe").success
    # then exactly the formats the spec lists (not 4x5 or 16x9), stills not repeated
    assert automation.tick() == {"aspect_outpaint": ["shoe|1x1", "shoe|9x16"], "motion": ["shoe|1x1", "shoe|9x16"]}
    assert automation.tick() == {}  # requested once


def _settled(instance, resources, campaigns_dir, automation: Automation) -> str:  # type: ignore[no-untyped-def]
    """Sensor cursor after both example campaigns were registered and their stills made; the
    automation has seen the stills (and requested their formats, which are not made here)."""
    first = _tick(instance, campaigns_dir, None)
    _apply(instance, first)
    automation.tick()
    for cid in ("shoe", "tower"):
        assert materialize_stages(instance, resources, STILLS, cid).success
    assert set(automation.tick()) == {"aspect_outpaint", "motion"}
    assert automation.tick() == {}  # a later tick (the requested runs would be under way)
    return _tick(instance, campaigns_dir, first.cursor).cursor  # type: ignore[return-value]


def test_editing_a_fix_reruns_from_inpaint_fix_only(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    cursor = _settled(instance, resources, campaigns_dir, automation)
    _edit(campaigns_dir, "shoe", lambda d: d["fixes"][1].__setitem__("feather", 8))
    result = _tick(instance, campaigns_dir, cursor)
    assert _requests(result) == [("campaign_stills", "shoe", ["inpaint_fix", "k_upscale"])]  # not the base
    assert materialize_stages(instance, resources, ["inpaint_fix", "k_upscale"], "shoe").success
    follow = automation.tick()  # then its formats, through automation
    assert follow == {"aspect_outpaint": ["shoe|1x1", "shoe|9x16"], "motion": ["shoe|1x1", "shoe|9x16"]}


def test_a_stage_rerolled_alone_is_followed_by_its_descendants(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    _settled(instance, resources, campaigns_dir, automation)
    # e.g. one stage re-rolled alone from the UI: the rest of the campaign's chain in one run, then its formats
    seeds = {"lighting_iteration": 5}
    assert materialize_stages(instance, resources, ["lighting_iteration"], "tower", seeds=seeds).success
    assert automation.tick() == {"inpaint_fix": ["tower"], "k_upscale": ["tower"]}
    assert materialize_stages(instance, resources, ["inpaint_fix", "k_upscale"], "tower").success
    assert automation.tick() == {"aspect_outpaint": ["tower|16x9"], "motion": ["tower|16x9"]}


def test_editing_motion_reruns_only_motion_for_each_format(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cursor = _settled(instance, resources, campaigns_dir, Automation(instance, campaigns_dir, tmp_path / "media"))
    _edit(campaigns_dir, "tower", lambda d: d["motion"].__setitem__("camera", "push_in"))
    _edit(campaigns_dir, "tower", lambda d: d["motion"].__setitem__("strength", 0.2))
    assert _requests(_tick(instance, campaigns_dir, cursor)) == [("format_deliverables", "tower|16x9", ["motion"])]


def test_adding_a_format_runs_only_that_format(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    cursor = _settled(instance, resources, campaigns_dir, automation)
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("formats", ["16x9", "4x5"]))
    assert _requests(_tick(instance, campaigns_dir, cursor)) == []  # the sensor leaves it to automation
    assert automation.tick() == {"aspect_outpaint": ["tower|4x5"], "motion": ["tower|4x5"]}


def test_invalid_spec_is_skipped_and_the_others_go_on(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cursor = _settled(instance, resources, campaigns_dir, Automation(instance, campaigns_dir, tmp_path / "media"))
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("formats", ["2x1"]))
    _edit(campaigns_dir, "shoe", lambda d: d["upscale"].__setitem__("detail", 0.3))
    result = _tick(instance, campaigns_dir, cursor)
    assert _requests(result) == [("campaign_stills", "shoe", ["k_upscale"])]
    state = json.loads(result.cursor)  # type: ignore[arg-type]
    assert "tower" in state and not state["tower"].get("deleted")  # last good state kept


def test_deleted_spec_keeps_its_partition_and_is_no_longer_acted_on(
    instance, resources, campaigns_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    cursor = _settled(instance, resources, campaigns_dir, Automation(instance, campaigns_dir, tmp_path / "media"))
    shutil.rmtree(campaigns_dir / "tower")
    result = _tick(instance, campaigns_dir, cursor)
    assert _requests(result) == []
    assert json.loads(result.cursor)["tower"]["deleted"] is True  # type: ignore[arg-type]
    assert instance.has_dynamic_partition("campaign", "tower")
    assert _requests(_tick(instance, campaigns_dir, result.cursor)) == []


def test_sensor_runs_by_default() -> None:
    assert campaign_folder_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_automation_sensor_runs_by_default_in_the_code_location() -> None:
    from media_routes.definitions import defs

    sensor = defs.resolve_sensor_def("stage_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)


def test_approval_required_makes_stills_and_waits_for_approval_before_motion(
    instance, resources, campaigns_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from media_routes import approvals
    from media_routes.lineage import trace

    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("approval", "required"))
    first = _tick(instance, campaigns_dir, None)
    _apply(instance, first)
    automation.tick()
    assert materialize_stages(instance, resources, STILLS, "tower").success
    assert automation.tick() == {"aspect_outpaint": ["tower|16x9"]}  # the still, no motion yet
    assert materialize_stages(instance, resources, ["aspect_outpaint"], "tower|16x9").success
    assert automation.tick() == {}  # waiting for a human

    still = next(r for r in trace(instance, "tower", ["16x9"]) if r["stage"] == "aspect_outpaint")["output_hash"]
    approvals.record(instance, "tower", "16x9", approved=True, still_hash=still, by="ana")
    assert automation.tick() == {"motion": ["tower|16x9"]}
    assert materialize_stages(instance, resources, ["motion"], "tower|16x9").success
    assert automation.tick() == {}
