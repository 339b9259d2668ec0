"""Integration: the whole graph for one campaign x 2 formats on a temporary instance, and re-rolls."""

from __future__ import annotations

from pathlib import Path

import av
import dagster as dg
import pytest

from media_routes.lib.imaging import decode_png
from media_routes.lineage import materialization_count, trace
from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
from media_routes.stages import STAGES
from media_routes_tests.shared_render import GROUP

pytestmark = pytest.mark.integration


def _local(store, uri: str) -> Path:  # type: ignore[no-untyped-def]
    path = store.local_path(uri)
    assert path is not None and path.is_file()
    return path


def _run_all(instance, resources, campaign: str, formats: list[str]) -> None:  # type: ignore[no-untyped-def]
    register_campaigns(instance, [campaign])
    for run in plan_runs(campaign, formats):
        assert materialize_stages(instance, resources, run.stages, run.partition).success


@GROUP
def test_whole_graph_one_campaign_two_formats(rendered) -> None:  # type: ignore[no-untyped-def]
    # 'shoe' x 9x16, 1x1 rendered once for the session, as _run_all would (shared_render.py)
    instance, resources = rendered.instance, rendered.resources
    assert all(ok for p, ok in rendered.runs.items() if p.startswith("shoe"))
    store = resources["media_store"]
    rows = trace(instance, "shoe")
    by_key = {(r["stage"], r["partition"]): r for r in rows}
    expected = [(s, "shoe") for s in STAGES[:4]] + [(s, f"shoe|{f}") for s in STAGES[4:] for f in ("1x1", "9x16")]
    assert sorted(by_key) == sorted(expected)

    for row in rows:
        # every materialization: provider, model, seed, hashes, size, path, preview, content-hash data version
        assert row["provider"] == "local" and row["model"].startswith("local-engine/")
        assert row["seed"] is not None
        assert row["data_version"] == row["output_hash"]
        assert row["input_hashes"]
        path = _local(store, row["uri"])
        assert path.name.startswith(row["output_hash"])  # content-addressed
        assert Path(row["path"]) == path  # trace shows the media file, not the IO manager's pickle
    # each stage's input hash is the previous stage's output hash (lineage holds together)
    assert (
        by_key[("lighting_iteration", "shoe")]["input_hashes"]["base_composition"]
        == by_key[("base_composition", "shoe")]["output_hash"]
    )
    assert (
        by_key[("aspect_outpaint", "shoe|9x16")]["input_hashes"]["k_upscale"]
        == by_key[("k_upscale", "shoe")]["output_hash"]
    )

    base = decode_png(_local(store, by_key[("base_composition", "shoe")]["uri"]).read_bytes())
    assert base.shape == (1024, 819, 3)
    up = decode_png(_local(store, by_key[("k_upscale", "shoe")]["uri"]).read_bytes())
    assert up.shape == (2048, 1638, 3)  # 2K: long side 2048, factor 2
    still = decode_png(_local(store, by_key[("aspect_outpaint", "shoe|9x16")]["uri"]).read_bytes())
    assert still.shape == (1920, 1080, 3)
    with av.open(str(_local(store, by_key[("motion", "shoe|9x16")]["uri"]))) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert (s.codec_context.width, s.codec_context.height) == (1080, 1920)
        assert sum(1 for _ in c.decode(video=0)) == 12

    # the preview metadata is a small data-URI thumbnail
    rec = instance.fetch_materializations(dg.AssetKey("k_upscale"), limit=1).records[0]
    md = rec.asset_materialization.metadata["preview"].value
    # under 1000 characters the Dagster UI renders markdown inline instead of behind "[Show Markdown]"
    assert md.startswith("![") and "data:image/webp;base64," in md and len(md) < 1000
    large = rec.asset_materialization.metadata["preview_large"].value
    assert "data:image/webp;base64," in large and len(large) < 60_000


def _counts(instance, campaigns: list[str], formats: list[str]) -> dict[tuple[str, str], int]:  # type: ignore[no-untyped-def]
    out = {}
    for c in campaigns:
        for s in STAGES[:4]:
            out[(s, c)] = materialization_count(instance, s, c)
        for s in STAGES[4:]:
            for f in formats:
                out[(s, f"{c}|{f}")] = materialization_count(instance, s, f"{c}|{f}")
    return out


@GROUP
def test_reroll_inpaint_fix_touches_only_downstream_of_that_campaign(rendered_copy) -> None:  # type: ignore[no-untyped-def]
    # shoe x 9x16, 1x1 and tower x 16x9 rendered as _run_all would, in a copy of the session's render
    instance, resources = rendered_copy.instance, rendered_copy.resources
    assert all(rendered_copy.runs.values())
    before = _counts(instance, ["shoe", "tower"], ["9x16", "1x1", "16x9"])
    fix_before = trace(instance, "shoe")
    old_fix = next(r for r in fix_before if r["stage"] == "inpaint_fix")

    for run in plan_runs("shoe", ["9x16", "1x1"], from_stage="inpaint_fix"):
        assert materialize_stages(instance, resources, run.stages, run.partition, seeds={"inpaint_fix": 99}).success

    after = _counts(instance, ["shoe", "tower"], ["9x16", "1x1", "16x9"])
    changed = {k for k in before if after[k] != before[k]}
    assert changed == {
        ("inpaint_fix", "shoe"),
        ("k_upscale", "shoe"),
        ("aspect_outpaint", "shoe|9x16"),
        ("aspect_outpaint", "shoe|1x1"),
        ("motion", "shoe|9x16"),
        ("motion", "shoe|1x1"),
    }
    assert all(after[k] == before[k] + 1 for k in changed)
    new_fix = next(r for r in trace(instance, "shoe") if r["stage"] == "inpaint_fix")
    assert new_fix["seed"] == 99 and old_fix["seed"] != 99
    # the new seed changes the matched grain of the 'remove' fix: a new data version
    assert new_fix["data_version"] != old_fix["data_version"]
    # the earlier output is still on disk (never overwritten)
    assert _local(resources["media_store"], old_fix["uri"]).is_file()


@GROUP
def test_reroll_single_format(rendered_copy) -> None:  # type: ignore[no-untyped-def]
    instance, resources = rendered_copy.instance, rendered_copy.resources  # shoe x 9x16, 1x1 made (_run_all)
    assert all(ok for p, ok in rendered_copy.runs.items() if p.startswith("shoe"))
    before = _counts(instance, ["shoe"], ["9x16", "1x1"])
    for run in plan_runs("shoe", ["1x1"], from_stage="aspect_outpaint"):
        assert materialize_stages(instance, resources, run.stages, run.partition, seeds={"aspect_outpaint": 5}).success
    after = _counts(instance, ["shoe"], ["9x16", "1x1"])
    assert {k for k in before if after[k] != before[k]} == {
        ("aspect_outpaint", "shoe|1x1"),
        ("motion", "shoe|1x1"),
    }


@GROUP
def test_broken_spec_fails_the_run_and_keeps_earlier_outputs(rendered_copy) -> None:  # type: ignore[no-untyped-def]
    # tower x 16x9 made (_run_all), in a copy of the session's render with its own specs folder
    instance, resources, campaigns_dir = rendered_copy.instance, rendered_copy.resources, rendered_copy.campaigns_dir
    assert rendered_copy.runs["tower"] and rendered_copy.runs["tower|16x9"]
    old = {r["stage"]: r for r in trace(instance, "tower")}
    spec = campaigns_dir / "tower" / "campaign.yaml"
    spec.write_text(spec.read_text().replace("formats:", "formatz:"))
    summary = materialize_stages(instance, resources, ["base_composition"], "tower", raise_on_error=False)
    assert not summary.success
    run = instance.get_run_by_id(summary.run_id)
    assert run is not None and run.is_failure
    failure = [e for e in instance.all_logs(summary.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    message = failure[0].dagster_event.step_failure_data.error.message
    assert "formatz" in message and "unknown field" in message and str(spec) in message
    # nothing earlier was lost: latest materializations and their files are unchanged
    assert {r["stage"]: r["data_version"] for r in trace(instance, "tower")} == {
        k: v["data_version"] for k, v in old.items()
    }
    for row in old.values():
        assert _local(resources["media_store"], row["uri"]).is_file()


def test_unknown_campaign_partition_is_refused(instance, resources) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(dg.DagsterUnknownPartitionError):
        materialize_stages(instance, resources, ["base_composition"], "never-registered")


def test_deterministic_base_for_spec_and_seed(instance, resources) -> None:  # type: ignore[no-untyped-def]
    register_campaigns(instance, ["tower"])
    a = materialize_stages(instance, resources, ["base_composition"], "tower")
    first = trace(instance, "tower")[0]["data_version"]
    b = materialize_stages(instance, resources, ["base_composition"], "tower")
    assert a.success and b.success
    assert trace(instance, "tower")[0]["data_version"] == first
    materialize_stages(instance, resources, ["base_composition"], "tower", seeds={"base_composition": 1234})
    assert trace(instance, "tower")[0]["data_version"] != first


@GROUP
def test_any_catalog_format_can_be_made_for_any_campaign(rendered_copy) -> None:  # type: ignore[no-untyped-def]
    # 'tower' delivers only 16x9 by default; 4x5 is not in its spec but is in the catalog. Its stills are
    # made (a copy of the session's render): the format run of _run_all(..., "tower", ["4x5"]) is what is left
    instance, resources = rendered_copy.instance, rendered_copy.resources
    (run,) = plan_runs("tower", ["4x5"], from_stage="aspect_outpaint")
    assert materialize_stages(instance, resources, run.stages, run.partition).success
    row = next(r for r in trace(instance, "tower", ["4x5"]) if r["stage"] == "aspect_outpaint")
    assert row["partition"] == "tower|4x5" and row["size"] == [1080, 1350]
