"""The campaign folder sensor and the automation that follows it: new, edited, invalid and deleted specs."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from media_routes.definitions import build_definitions
from media_routes.defs.campaign_specs import slice_key
from media_routes.defs.resources import CampaignCatalog
from media_routes.defs.sensors import campaign_folder_sensor
from media_routes.pipeline import materialize_stages
from media_routes.spec_index import Entry, SpecIndex

STILLS = ["base_composition", "lighting_iteration", "inpaint_fix", "k_upscale"]
ALL = [*STILLS, "aspect_outpaint", "motion"]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """In memory: the same SQL event log as the on-disk SQLite of ``instance_for_test``, without a new
    connection per query (an automation tick reads the dynamic partitions hundreds of times: ~5x faster)."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@dataclass
class Tick:
    """What one evaluation of the sensor left in the instance, read back from the instance itself."""

    observed: dict[str, list[str]]  # campaign -> stages whose spec slice got a new observation
    registered: list[str]  # campaign partitions added
    cursor: str | None


def _observation_ids(instance: dg.DagsterInstance) -> int:
    records = [
        instance.fetch_observations(dg.AssetRecordsFilter(asset_key=slice_key(stage)), limit=1).records for stage in ALL
    ]
    return max((r[0].storage_id for r in records if r), default=0)


def _tick(instance: dg.DagsterInstance, campaigns_dir: Path, cursor: str | None) -> Tick:
    before_id = _observation_ids(instance)
    before = set(instance.get_dynamic_partitions("campaign"))
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"campaigns": CampaignCatalog(campaigns_dir=str(campaigns_dir))}
    )
    result = campaign_folder_sensor(context)
    assert isinstance(result, dg.SensorResult) and not result.run_requests  # the sensor launches nothing itself
    observed: dict[str, list[str]] = {}
    for stage in ALL:
        records = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=slice_key(stage), after_storage_id=before_id), limit=10_000
        ).records
        for record in records:
            observed.setdefault(str(record.partition_key), []).append(stage)
    registered = sorted(set(instance.get_dynamic_partitions("campaign")) - before)
    return Tick(observed=observed, registered=registered, cursor=result.cursor)


def _index(instance: dg.DagsterInstance, campaigns_dir: Path) -> dict[str, Entry]:
    return SpecIndex.load(instance.daemon_cursor_storage, campaigns_dir).entries


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


_SERIAL = itertools.count()


def _made(instance: dg.DagsterInstance, stages: list[str], partition: str, seed: int = 0) -> None:
    """What a run of ``stages`` for ``partition`` leaves in the instance, without rendering: one runless
    materialization per stage, in pipeline order, each with a new ``output_hash``. That is all the sensor and
    the automation read (that a stage was made after its inputs; for approvals, the still's hash); the
    rendering itself is tested for real in test_pipeline.py and in the tests here that use ``resources``."""
    for stage in [s for s in ALL if s in stages]:
        digest = hashlib.sha256(f"{stage}|{partition}|{seed}|{next(_SERIAL)}".encode()).hexdigest()
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=stage, partition=partition, metadata={"output_hash": digest, "seed": seed}
            )
        )


@pytest.mark.integration
def test_new_specs_become_partitions_then_stills_then_formats(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    assert automation.tick() == {}  # the daemon's first evaluation, before anything happened
    first = _tick(instance, campaigns_dir, None)
    assert first.registered == ["shoe", "tower"]
    assert first.observed == {"shoe": ALL, "tower": ALL}  # every slice of a new spec

    # the stills in one run per campaign; no format run may read a missing input yet
    assert automation.tick() == {stage: ["shoe", "tower"] for stage in STILLS}
    assert materialize_stages(instance, resources, STILLS, "shoe").success
    # then exactly the formats the spec lists (not 4x5 or 16x9), stills not repeated
    assert automation.tick() == {"aspect_outpaint": ["shoe|1x1", "shoe|9x16"], "motion": ["shoe|1x1", "shoe|9x16"]}
    assert automation.tick() == {}  # requested once
    assert _tick(instance, campaigns_dir, first.cursor).observed == {}  # nothing changed


def _settled(instance, campaigns_dir, automation: Automation, resources=None) -> str:  # type: ignore[no-untyped-def]
    """Sensor cursor after both example campaigns were registered and their stills made (rendered with
    ``resources``, else seeded with runless materializations); the automation has seen the stills (and
    requested their formats, which are not made here)."""
    automation.tick()
    first = _tick(instance, campaigns_dir, None)
    assert set(automation.tick()) == set(STILLS)
    for cid in ("shoe", "tower"):
        if resources is None:
            _made(instance, STILLS, cid)
        else:
            assert materialize_stages(instance, resources, STILLS, cid).success
    assert set(automation.tick()) == {"aspect_outpaint", "motion"}
    assert automation.tick() == {}  # a later tick (the requested runs would be under way)
    return _tick(instance, campaigns_dir, first.cursor).cursor  # type: ignore[return-value]


def _stale(instance: dg.DagsterInstance, campaigns_dir: Path, media_root: Path) -> dict[str, str]:
    """Stage -> its campaign 'shoe' partition's stale status, as the UI shows it."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    defs = build_definitions(campaigns_dir=str(campaigns_dir), media_root=str(media_root))
    resolver = get_stale_status_resolver(instance, list(defs.resolve_asset_graph().assets_defs))
    return {s: resolver.get_status(dg.AssetKey(s), "shoe").value for s in STILLS}


@pytest.mark.integration
def test_editing_a_fix_reruns_from_inpaint_fix_only(instance, resources, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    cursor = _settled(instance, campaigns_dir, automation, resources)
    assert set(_stale(instance, campaigns_dir, tmp_path / "media").values()) == {"FRESH"}
    _edit(campaigns_dir, "shoe", lambda d: d["fixes"][1].__setitem__("feather", 8))
    result = _tick(instance, campaigns_dir, cursor)
    assert result.observed == {"shoe": ["inpaint_fix"]}  # not the base
    # Dagster's own staleness sees the edit: inpaint_fix is stale, the stages before it are not
    stale = _stale(instance, campaigns_dir, tmp_path / "media")
    assert stale == {
        "base_composition": "FRESH",
        "lighting_iteration": "FRESH",
        "inpaint_fix": "STALE",
        "k_upscale": "FRESH",
    }
    assert automation.tick() == {"inpaint_fix": ["shoe"], "k_upscale": ["shoe"]}
    assert materialize_stages(instance, resources, ["inpaint_fix", "k_upscale"], "shoe").success
    follow = automation.tick()  # then its formats
    assert follow == {"aspect_outpaint": ["shoe|1x1", "shoe|9x16"], "motion": ["shoe|1x1", "shoe|9x16"]}


def test_a_stage_rerolled_alone_is_followed_by_its_descendants(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    _settled(instance, campaigns_dir, automation)
    # e.g. one stage re-rolled alone from the UI: the rest of the campaign's chain in one run, then its formats
    _made(instance, ["lighting_iteration"], "tower", seed=5)
    assert automation.tick() == {"inpaint_fix": ["tower"], "k_upscale": ["tower"]}
    _made(instance, ["inpaint_fix", "k_upscale"], "tower")
    assert automation.tick() == {"aspect_outpaint": ["tower|16x9"], "motion": ["tower|16x9"]}


def test_editing_motion_reruns_only_motion_for_each_format(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    cursor = _settled(instance, campaigns_dir, automation)
    _made(instance, ["aspect_outpaint", "motion"], "tower|16x9")
    assert automation.tick() == {}
    _edit(campaigns_dir, "tower", lambda d: d["motion"].__setitem__("camera", "push_in"))
    _edit(campaigns_dir, "tower", lambda d: d["motion"].__setitem__("strength", 0.2))
    result = _tick(instance, campaigns_dir, cursor)
    assert result.observed == {"tower": ["motion"]}
    assert automation.tick() == {"motion": ["tower|16x9"]}


def test_adding_a_format_runs_only_that_format(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    cursor = _settled(instance, campaigns_dir, automation)
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("formats", ["16x9", "4x5"]))
    result = _tick(instance, campaigns_dir, cursor)
    assert result.observed == {}  # no stage's slice changed
    assert automation.tick() == {"aspect_outpaint": ["tower|4x5"], "motion": ["tower|4x5"]}


def test_invalid_spec_is_skipped_and_the_others_go_on(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cursor = _settled(instance, campaigns_dir, Automation(instance, campaigns_dir, tmp_path / "media"))
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("formats", ["2x1"]))
    _edit(campaigns_dir, "shoe", lambda d: d["upscale"].__setitem__("detail", 0.3))
    result = _tick(instance, campaigns_dir, cursor)
    assert result.observed == {"shoe": ["k_upscale"]}
    tower = _index(instance, campaigns_dir)["tower"]
    assert tower.error is not None and "formats" in tower.error and not tower.deleted
    assert tower.formats == ["16x9"]  # last good state kept


def test_deleted_spec_keeps_its_partition_and_is_no_longer_acted_on(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cursor = _settled(instance, campaigns_dir, Automation(instance, campaigns_dir, tmp_path / "media"))
    shutil.rmtree(campaigns_dir / "tower")
    result = _tick(instance, campaigns_dir, cursor)
    assert result.observed == {}
    assert _index(instance, campaigns_dir)["tower"].deleted is True
    assert instance.has_dynamic_partition("campaign", "tower")
    assert _tick(instance, campaigns_dir, result.cursor).observed == {}


def test_a_lost_cursor_reruns_nothing(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    _settled(instance, campaigns_dir, automation)
    again = _tick(instance, campaigns_dir, None)  # e.g. the sensor was reset
    assert again.observed == {} and not again.registered


def test_sensor_runs_by_default() -> None:
    assert campaign_folder_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_automation_sensor_runs_by_default_in_the_code_location() -> None:
    from media_routes.definitions import defs

    sensor = defs.resolve_sensor_def("stage_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)


def test_approval_required_makes_stills_and_waits_for_approval_before_motion(instance, campaigns_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from media_routes import approvals
    from media_routes.lineage import trace

    automation = Automation(instance, campaigns_dir, tmp_path / "media")
    _edit(campaigns_dir, "tower", lambda d: d.__setitem__("approval", "required"))
    automation.tick()
    _tick(instance, campaigns_dir, None)
    assert automation.tick() == {stage: ["shoe", "tower"] for stage in STILLS}
    _made(instance, STILLS, "tower")
    assert automation.tick() == {"aspect_outpaint": ["tower|16x9"]}  # the still, no motion yet
    _made(instance, ["aspect_outpaint"], "tower|16x9")
    assert automation.tick() == {}  # waiting for a human

    still = next(r for r in trace(instance, "tower", ["16x9"]) if r["stage"] == "aspect_outpaint")["output_hash"]
    approvals.record(instance, "tower", "16x9", approved=True, still_hash=still, by="ana")
    assert automation.tick() == {"motion": ["tower|16x9"]}
    _made(instance, ["motion"], "tower|16x9")  # the motion stage's own approval gate: test_approvals.py
    assert automation.tick() == {}
