"""dagster.yaml loads as a Dagster instance with the documented limits (docs/operations.md)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_routes.defs.stages import STAGE_ASSETS
from media_routes.defs.stages.declare import LOCAL_ENGINE_POOL

REPO = Path(__file__).resolve().parent.parent


def test_repository_dagster_yaml_is_a_valid_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config is not None
        assert config.run_queue_config.max_concurrent_runs == 2
        limited = {limit["key"] for limit in config.run_queue_config.tag_concurrency_limits}
        assert limited == {"dagster/partition", "dagster/partition/campaign"}
        assert config.pool_config.default_pool_limit == 2
        assert instance.event_log_storage.supports_global_concurrency_limits  # pools work on SQLite
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure


def test_every_stage_is_in_the_local_engine_pool_and_retries_transient_failures() -> None:
    for asset in STAGE_ASSETS:
        assert asset.op.pool == LOCAL_ENGINE_POOL, asset.key
        assert asset.op.retry_policy is not None and asset.op.retry_policy.max_retries == 2, asset.key


@pytest.mark.integration
def test_a_broken_spec_fails_the_stage_at_once_without_retries(instance, resources, campaigns_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from media_routes.pipeline import materialize_stages

    instance.add_dynamic_partitions("campaign", ["tower"])
    spec = campaigns_dir / "tower" / "campaign.yaml"
    spec.write_text(spec.read_text().replace("formats:", "formatz:", 1))
    summary = materialize_stages(instance, resources, ["base_composition"], "tower", raise_on_error=False)
    assert not summary.success
    events = [e.dagster_event_type for e in instance.all_logs(summary.run_id)]
    assert dg.DagsterEventType.STEP_FAILURE in events
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events  # retrying cannot fix a spec
    failure = next(
        e for e in instance.all_logs(summary.run_id) if e.dagster_event_type == dg.DagsterEventType.STEP_FAILURE
    )
    assert "has an invalid spec" in failure.dagster_event.step_failure_data.error.message  # type: ignore[union-attr]
    assert "formatz" in failure.dagster_event.step_failure_data.error.message  # type: ignore[union-attr]


def _step_events(instance: dg.DagsterInstance, run_id: str) -> list[Any]:
    return [e.dagster_event_type for e in instance.all_logs(run_id)]


@pytest.mark.integration
def test_an_error_a_retry_cannot_fix_fails_the_step_once_with_its_reason(  # type: ignore[no-untyped-def]
    instance, resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = importlib.import_module("media_routes.defs.stages.base_composition")  # the module, not the asset
    from media_routes.pipeline import materialize_stages
    from media_routes.run_report import failure_reasons

    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ValueError("cannot place layer 'shoe': empty alpha")

    monkeypatch.setattr(stage, "compose", broken)
    instance.add_dynamic_partitions("campaign", ["tower"])
    summary = materialize_stages(instance, resources, ["base_composition"], "tower", raise_on_error=False)
    assert not summary.success
    events = _step_events(instance, summary.run_id)
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events and len(calls) == 1
    assert failure_reasons(instance, summary.run_id) == [
        "base_composition: ValueError: cannot place layer 'shoe': empty alpha (not retried: it would fail the same way)"
    ]


@pytest.mark.integration
def test_a_transient_os_error_is_retried_and_the_stage_then_succeeds(  # type: ignore[no-untyped-def]
    instance, resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = importlib.import_module("media_routes.defs.stages.base_composition")  # the module, not the asset
    from media_routes.pipeline import materialize_stages

    real, calls = stage.compose, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(stage, "compose", flaky)
    instance.add_dynamic_partitions("campaign", ["tower"])
    summary = materialize_stages(instance, resources, ["base_composition"], "tower", raise_on_error=False)
    assert summary.success and len(calls) == 2
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY in _step_events(instance, summary.run_id)
