"""The control plane at scale (issue #13): the spec index, paged sensor ticks, and readers that never re-parse.

Counted, not timed: specs parsed (YAML loads), SQL statements sent to the instance's database (an
SQLAlchemy listener on every engine), partitions added, observations stored. Timings are in
benchmarks/bench_control_plane.py.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy
import yaml

from media_routes import spec, spec_index
from media_routes.definitions import build_definitions
from media_routes.defs.campaign_specs import slice_key
from media_routes.defs.campaign_sync import TickBudget, TickReport, sync_campaigns
from media_routes.defs.resources import CampaignCatalog
from media_routes.defs.schedules import campaign_refresh_schedule
from media_routes.spec_index import SpecIndex, forget_process_memory
from media_routes.stages import STAGES
from media_routes.testing.campaigns import FAST, write_many


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(autouse=True)
def _fresh_process_memory() -> Iterator[None]:
    forget_process_memory()
    yield
    forget_process_memory()


class Counts:
    """Spec parses (YAML documents read by media_routes.spec) and SQL statements while the block runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.yaml = 0
        self.sql = 0
        monkeypatch.setattr(spec, "read_yaml", self._counting(spec.read_yaml))  # every spec parse goes through it

    def _counting(self, real: Any) -> Any:
        def counting_load(*args: Any, **kwargs: Any) -> Any:
            self.yaml += 1
            return real(*args, **kwargs)

        return counting_load

    def _on_sql(self, *args: Any) -> None:
        self.sql += 1

    def __enter__(self) -> Counts:
        self.yaml = self.sql = 0
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", self._on_sql)
        return self

    def __exit__(self, *exc: object) -> None:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", self._on_sql)


def _observations(instance: dg.DagsterInstance) -> Counter[str]:
    """Campaign -> number of spec slice observations stored."""
    out: Counter[str] = Counter()
    for stage in STAGES:
        for record in instance.fetch_observations(dg.AssetRecordsFilter(asset_key=slice_key(stage)), 10_000).records:
            out[str(record.partition_key)] += 1
    return out


def _settle(instance: dg.DagsterInstance, campaigns_dir: Path, **budget: Any) -> list[TickReport]:
    reports = [sync_campaigns(instance, campaigns_dir, budget=TickBudget(**budget))]
    while reports[-1].pending:
        reports.append(sync_campaigns(instance, campaigns_dir, budget=TickBudget(**budget)))
        assert len(reports) < 50
    return reports


def _edit(campaigns_dir: Path, cid: str, mutate: Any) -> None:
    spec = campaigns_dir / cid / "campaign.yaml"
    data = yaml.safe_load(spec.read_text())
    mutate(data)
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def _unchanged_tick_counts(
    instance: dg.DagsterInstance, root: Path, n: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Counts, TickReport]:
    root.mkdir()
    write_many(root, n, **FAST)
    with monkeypatch.context() as m:
        m.setattr(spec_index, "RACY_NS", 0)  # as if the files were written long before (else re-hashed once)
        _settle(instance, root)
    counts = Counts(monkeypatch)
    with counts:
        report = sync_campaigns(instance, root)
    return counts, report


def test_an_unchanged_tick_parses_nothing_and_its_queries_do_not_grow_with_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.DagsterInstance.ephemeral() as small_instance, dg.DagsterInstance.ephemeral() as large_instance:
        small, small_report = _unchanged_tick_counts(small_instance, tmp_path / "small", 20, monkeypatch)
        large, large_report = _unchanged_tick_counts(large_instance, tmp_path / "large", 200, monkeypatch)
        assert large_report.listed == 200 and large_report.parsed == 0 and large.yaml == 0
        assert large_report.observations == {} and large_report.registered == []
        # the index generation (one SELECT, and the connection's two PRAGMAs); nothing per campaign
        assert large.sql == small.sql <= 3, (small.sql, large.sql)
        # a new process (the code server restarted) reads the index once more: still independent of N
        forget_process_memory()
        with large:
            cold = sync_campaigns(large_instance, tmp_path / "large")
        assert cold.parsed == 0 and large.yaml == 0 and large.sql <= 6, large.sql  # + the SELECT of the shards


def test_an_edit_parses_exactly_that_spec_and_observes_only_its_changed_slice(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_many(tmp_path, 30, **FAST)
    _settle(instance, tmp_path)
    _edit(tmp_path, "c00007", lambda d: d["upscale"].__setitem__("detail", 0.3))
    with Counts(monkeypatch) as counts:
        report = sync_campaigns(instance, tmp_path)
    assert report.parsed == 1 and counts.yaml == 1
    assert report.observations == {"c00007": ["k_upscale"]}
    assert "c00007: spec edit touches k_upscale" in "\n".join(report.log)


def test_a_large_drop_is_paged_and_every_campaign_registered_and_observed_once(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = write_many(tmp_path, 120, **FAST)
    added: Counter[str] = Counter()
    real_add = instance.add_dynamic_partitions

    def counting_add(name: str, keys: list[str]) -> None:
        added.update(keys)
        real_add(name, keys)

    monkeypatch.setattr(instance, "add_dynamic_partitions", counting_add)
    reports = _settle(instance, tmp_path, max_specs=50)
    assert [r.pending for r in reports] == [70, 20, 0]
    assert [len(r.registered) for r in reports] == [50, 50, 20]
    assert "70 campaign spec(s) still pending" in "\n".join(reports[0].log)
    assert added == Counter(ids)  # each exactly once
    assert _observations(instance) == Counter({cid: len(STAGES) for cid in ids})
    assert sync_campaigns(instance, tmp_path).observations == {}


def test_a_spec_changed_during_paging_is_picked_up(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    write_many(tmp_path, 120, **FAST)
    first = sync_campaigns(instance, tmp_path, budget=TickBudget(max_specs=50))
    assert "c00001" in first.registered and "c00100" not in first.registered
    _edit(tmp_path, "c00001", lambda d: d["motion"].__setitem__("strength", 0.2))  # already synced
    _edit(tmp_path, "c00100", lambda d: d["motion"].__setitem__("strength", 0.2))  # still pending
    second = sync_campaigns(instance, tmp_path, budget=TickBudget(max_specs=50))
    assert second.observations["c00001"] == ["motion"]  # edits go first
    rest = _settle(instance, tmp_path, max_specs=50)
    assert sum("c00100" in r.observations for r in [second, *rest]) == 1
    counts = _observations(instance)
    assert counts["c00001"] == len(STAGES) + 1 and counts["c00100"] == len(STAGES)
    latest = instance.get_latest_data_version_record(slice_key("motion"), True, partition_key="c00100")
    entry = SpecIndex.load(instance.daemon_cursor_storage, tmp_path).entries["c00100"]
    assert latest is not None and latest.asset_observation is not None
    assert latest.asset_observation.tags["dagster/data_version"] == entry.slices["motion"]


def test_a_deleted_spec_keeps_its_partition_and_comes_back_without_a_rerun(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    write_many(tmp_path, 4, **FAST)
    _settle(instance, tmp_path)
    shutil.move(tmp_path / "c00002", tmp_path.parent / "c00002-away")
    gone = sync_campaigns(instance, tmp_path)
    assert gone.removed == ["c00002"] and instance.has_dynamic_partition("campaign", "c00002")
    assert SpecIndex.load(instance.daemon_cursor_storage, tmp_path).entries["c00002"].deleted
    assert sync_campaigns(instance, tmp_path).removed == []  # reported once
    shutil.move(tmp_path.parent / "c00002-away", tmp_path / "c00002")
    back = sync_campaigns(instance, tmp_path)
    assert back.observations == {} and back.registered == [] and back.parsed == 0
    assert not SpecIndex.load(instance.daemon_cursor_storage, tmp_path).entries["c00002"].deleted


def test_a_lost_index_rebuilds_without_re_observing_or_re_registering(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """The index is keyed by the folder: moving the folder is the same as losing the index."""
    first = tmp_path / "campaigns"
    first.mkdir()
    write_many(first, 12, **FAST)
    _settle(instance, first)
    before = _observations(instance)
    moved = tmp_path / "moved"
    first.rename(moved)
    forget_process_memory()
    rebuilt = _settle(instance, moved)
    assert sum(r.parsed for r in rebuilt) == 12
    assert all(r.observations == {} and r.registered == [] for r in rebuilt)
    assert _observations(instance) == before


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("not-utf8", b"id: not-utf8\nformats: [\xff]\n", "not UTF-8 text: byte 23 is 0xff"),
        ("huge", b"id: huge\nnotes: '" + b"x" * 1_100_000 + b"'\n", "a spec may have at most 1,000,000"),
        ("deep", b"id: deep\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n", "(yaml)"),
        ("not-a-mapping", b"- just\n- a list\n", "expected a mapping"),
    ],
)
def test_a_broken_or_huge_spec_never_stalls_the_tick(
    instance: dg.DagsterInstance, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    write_many(tmp_path, 3, **FAST)
    (tmp_path / name).mkdir()
    (tmp_path / name / "campaign.yaml").write_bytes(content)
    report = sync_campaigns(instance, tmp_path)
    assert report.registered == ["c00000", "c00001", "c00002"] and report.invalid == [name]
    entry = SpecIndex.load(instance.daemon_cursor_storage, tmp_path).entries[name]
    assert entry.error is not None and reason in entry.error and str(tmp_path / name / "campaign.yaml") in entry.error
    assert any(line.startswith("skipping an invalid campaign spec") and reason in line for line in report.log)
    again = sync_campaigns(instance, tmp_path)  # not re-parsed, still named
    assert again.parsed == 0 and f"1 invalid spec(s) unchanged since reported: {name}" in again.log


def test_an_invalid_spec_is_re_checked_when_the_missing_file_arrives(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    write_many(tmp_path, 1, **FAST)
    cutout = next(p for p in (tmp_path / "c00000").rglob("*.png"))
    saved = cutout.read_bytes()
    cutout.unlink()
    first = sync_campaigns(instance, tmp_path)
    assert first.invalid == ["c00000"] and first.registered == []
    assert sync_campaigns(instance, tmp_path).parsed == 0
    cutout.write_bytes(saved)
    fixed = sync_campaigns(instance, tmp_path)
    assert fixed.parsed == 1 and fixed.registered == ["c00000"] and fixed.invalid == []


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """Mtimes are coarse: a spec rewritten within the clock's tick keeps its mtime (git's 'racy' case)."""
    write_many(tmp_path, 2, **FAST)
    _settle(instance, tmp_path)
    spec = tmp_path / "c00000" / "campaign.yaml"
    st = spec.stat()
    text = spec.read_text()
    assert "detail: 0.6" in text
    spec.write_text(text.replace("detail: 0.6", "detail: 0.7"))  # same size
    os.utime(spec, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    report = sync_campaigns(instance, tmp_path)
    assert report.observations == {"c00000": ["k_upscale"]}


def _made(instance: dg.DagsterInstance, stages: list[str], partition: str) -> None:
    for stage in stages:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=stage, partition=partition, metadata={"output_hash": f"{stage}{partition}"}
            )
        )


def test_automation_and_the_schedule_read_the_index_not_the_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dg.instance_for_test() as instance:
        _automation_and_schedule(instance, tmp_path, monkeypatch)


def _automation_and_schedule(instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = write_many(tmp_path, 6, **FAST)
    _edit(tmp_path, "c00002", lambda d: d.__setitem__("refresh", {"cron": "0 6 * * 1", "timezone": "Europe/Paris"}))
    _settle(instance, tmp_path)
    defs = build_definitions(campaigns_dir=str(tmp_path), media_root=str(tmp_path / "media"))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    for cid in ids[:2]:
        _made(instance, list(STAGES[:4]), cid)
    formats = {cid: yaml.safe_load((tmp_path / cid / "campaign.yaml").read_text())["formats"] for cid in ids[:2]}
    with Counts(monkeypatch) as counts:
        follow = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC),
            resources={"campaigns": CampaignCatalog(campaigns_dir=str(tmp_path))},
        )
        requests = campaign_refresh_schedule(context)
    assert {str(k) for k in follow.get_requested_partitions(dg.AssetKey("aspect_outpaint"))} == {
        f"{cid}|{fmt}" for cid in ids[:2] for fmt in formats[cid]
    }
    assert isinstance(requests, list) and [r.partition_key for r in requests] == ["c00002"]
    assert counts.yaml == 0


def test_a_spec_written_while_the_tick_validates_it_is_read_again(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment test's race: the folder is copied, the sensor reads the copied spec, then the spec is
    rewritten with its own id, all within one validation. The next tick must see the rewrite."""
    write_many(tmp_path, 1, **FAST)
    spec_path = tmp_path / "c00000" / "campaign.yaml"
    original = spec_path.read_text()
    spec_path.write_text(original.replace("id: c00000", "id: wrong-id"))
    real = spec_index.load_campaign
    written = []

    def load_then_rewrite(path: Path, **kwargs: Any) -> Any:
        try:
            return real(path, **kwargs)
        finally:
            if not written:
                spec_path.write_text(original)  # lands after the bytes were read
                written.append(1)

    monkeypatch.setattr(spec_index, "load_campaign", load_then_rewrite)
    monkeypatch.setattr(spec_index, "RACY_NS", 0)  # not even the racy re-hash may be what saves it
    first = sync_campaigns(instance, tmp_path)
    assert first.invalid == ["c00000"]
    second = sync_campaigns(instance, tmp_path)
    assert second.registered == ["c00000"] and second.invalid == []


def test_the_time_budget_is_checked_per_campaign_not_per_page(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """A page of slow writes must not carry a tick past its budget (measured at 10,000 campaigns under load:
    one 50-campaign page took 58-68 s). With a clock where every check costs a second, a 5 s budget ends
    the tick after a handful of campaigns, not after a page; the next ticks take the rest, each once."""
    ids = write_many(tmp_path, 30, **FAST)
    ticks = [0.0]

    def clock() -> float:
        ticks[0] += 1.0
        return ticks[0]

    reports = []
    while not reports or reports[-1].pending:
        ticks[0] = 0.0
        reports.append(sync_campaigns(instance, tmp_path, budget=TickBudget(seconds=5.0), clock=clock))
        assert len(reports) < 40
    assert all(1 <= len(r.registered) <= 5 for r in reports[:-1]), [len(r.registered) for r in reports]
    assert sorted(c for r in reports for c in r.registered) == ids
    assert _observations(instance) == Counter({cid: len(STAGES) for cid in ids})
