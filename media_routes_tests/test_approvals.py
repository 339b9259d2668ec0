"""Approval before motion (issue #6, item 3): motion waits for an approval of exactly its still."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from media_routes import approvals
from media_routes.cli import main
from media_routes.defs.review import review_still
from media_routes.lineage import trace
from media_routes.pipeline import materialize_stages, register_campaigns
from media_routes_tests.shared_render import GROUP, Rendered, copy_of

# the module-scoped render below is shared by its tests: one xdist worker
pytestmark = pytest.mark.xdist_group("approvals")
STILLS = ["base_composition", "lighting_iteration", "inpaint_fix", "k_upscale"]


@pytest.fixture(scope="module")
def made_for_approval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """'tower' with ``approval: required``: registered, its stills and its 16x9 still made, once per module."""
    from media_routes.definitions import build_resources
    from media_routes.testing.campaigns import FAST, write_campaign

    root = tmp_path_factory.mktemp("approval")
    (root / "instance").mkdir()
    write_campaign(root / "campaigns", "atrium-residences", "tower", formats=["16x9"], approval="required", **FAST)
    resources = build_resources(campaigns_dir=str(root / "campaigns"), media_root=str(root / "media"))
    with dg.instance_for_test(temp_dir=str(root / "instance"), set_dagster_home=False) as instance:
        register_campaigns(instance, ["tower"])
        assert materialize_stages(instance, resources, STILLS, "tower").success
        assert materialize_stages(instance, resources, ["aspect_outpaint"], "tower|16x9").success
        yield Rendered(instance, resources, root / "campaigns", {}, root)


@pytest.fixture
def required(made_for_approval: Rendered, tmp_path: Path) -> Iterator[tuple[dg.DagsterInstance, dict, str]]:  # type: ignore[type-arg]
    """A copy of ``made_for_approval`` for this test (it records approvals and makes runs): instance,
    resources and the 16x9 still's hash."""
    with copy_of(made_for_approval, tmp_path / "approval") as copy:
        rows = trace(copy.instance, "tower", ["16x9"])
        yield copy.instance, copy.resources, next(r for r in rows if r["stage"] == "aspect_outpaint")["output_hash"]


def _motion(instance, resources) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    run = materialize_stages(instance, resources, ["motion"], "tower|16x9", raise_on_error=False)
    if run.success:
        return True, ""
    failure = next(e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_failure)
    return False, failure.dagster_event.step_failure_data.error.message  # type: ignore[union-attr]


@pytest.mark.integration
def test_motion_waits_for_approval_then_runs(required) -> None:  # type: ignore[no-untyped-def]
    instance, resources, still = required
    ok, message = _motion(instance, resources)
    assert not ok and "waiting for approval" in message and "media-routes approve tower 16x9" in message
    assert not [r for r in trace(instance, "tower", ["16x9"]) if r["stage"] == "motion"]  # nothing spent
    approvals.record(instance, "tower", "16x9", approved=True, still_hash=still, by="ana", note="ship it")
    assert _motion(instance, resources) == (True, "")
    row = next(r for r in trace(instance, "tower", ["16x9"]) if r["stage"] == "aspect_outpaint")
    assert row["approval"]["approval"] == "approved" and row["approval"]["by"] == "ana"
    assert row["approval"]["note"] == "ship it" and row["approval"]["at"]


@pytest.mark.integration
def test_rejection_blocks_motion(required) -> None:  # type: ignore[no-untyped-def]
    instance, resources, still = required
    approvals.record(instance, "tower", "16x9", approved=False, still_hash=still, by="ben", note="logo too small")
    ok, message = _motion(instance, resources)
    assert not ok and "rejected by ben" in message and "logo too small" in message


@pytest.mark.integration
def test_an_approval_covers_only_the_still_that_was_reviewed(required) -> None:  # type: ignore[no-untyped-def]
    instance, resources, still = required
    approvals.record(instance, "tower", "16x9", approved=True, still_hash=still, by="ana")
    # the base is re-rolled after the approval (new texture seed), so a new still comes down the chain
    assert materialize_stages(instance, resources, STILLS, "tower", seeds={"base_composition": 99}).success
    assert materialize_stages(instance, resources, ["aspect_outpaint"], "tower|16x9").success
    new = next(r for r in trace(instance, "tower", ["16x9"]) if r["stage"] == "aspect_outpaint")["output_hash"]
    assert new != still
    ok, message = _motion(instance, resources)
    assert not ok and "was for still" in message


@pytest.mark.integration
def test_review_job_records_an_approval_from_the_ui(required) -> None:  # type: ignore[no-untyped-def]
    instance, resources, still = required
    result = review_still.execute_in_process(
        run_config={"ops": {"record_review": {"config": {"campaign": "tower", "format": "16x9", "reviewer": "ui"}}}},
        instance=instance,
    )
    assert result.success
    assert approvals.latest(instance, "tower", "16x9")["still_hash"] == still  # type: ignore[index]
    assert _motion(instance, resources) == (True, "")


@pytest.mark.integration
@GROUP
def test_auto_approval_needs_nothing(rendered) -> None:  # type: ignore[no-untyped-def]
    # 'tower' (approval: auto) rendered once for the session (shared_render.py): its stills run, then
    # aspect_outpaint and motion of tower x 16x9 in one run, with no approval recorded
    assert rendered.runs["tower"] and rendered.runs["tower|16x9"]
    assert approvals.latest(rendered.instance, "tower", "16x9") is None
    assert [r["stage"] for r in trace(rendered.instance, "tower", ["16x9"])][-1] == "motion"


def test_cli_approve_without_a_still(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["approve", "tower", "16x9"]) == 1
    assert "nothing to review" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse, before any work
        main(["approve", "tower", "3x2"])
    assert refused.value.code == 2 and "unknown format '3x2'" in capsys.readouterr().err


def test_review_job_is_in_the_definitions() -> None:
    from media_routes.definitions import defs

    assert defs.resolve_job_def("review_still") is not None
    assert isinstance(review_still, dg.JobDefinition)
