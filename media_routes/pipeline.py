"""Drive the asset graph in-process against a Dagster instance (used by the CLI and the tests).

Each call is a real Dagster run recorded in the instance's event log, so everything done here shows
up in `dagster dev` (same DAGSTER_HOME) with lineage and metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.defs_state.base import set_defs_state_storage

from media_routes.defs.jobs import CAMPAIGN_JOB, FORMAT_JOB
from media_routes.recovery import process_tags
from media_routes.stages import (
    CAMPAIGN_DIMENSION,
    CAMPAIGN_STAGES,
    FIRST_STAGE,
    FORMAT_STAGES,
    STAGES,
    campaign_format_key,
    downstream_of,
)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    partition: str
    stages: list[str]
    success: bool


def register_campaigns(instance: dg.DagsterInstance, campaign_ids: Sequence[str]) -> list[str]:
    """Add campaigns as dynamic partitions; returns the ones that were new."""
    new = [c for c in campaign_ids if not instance.has_dynamic_partition(CAMPAIGN_DIMENSION, c)]
    if new:
        instance.add_dynamic_partitions(CAMPAIGN_DIMENSION, new)
    return new


def _run_config(seeds: dict[str, int] | None, log_level: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if seeds:
        cfg["ops"] = {stage: {"config": {"seed": seed}} for stage, seed in seeds.items()}
    return cfg


def _definitions(resources: Mapping[str, Any]) -> dg.Definitions:
    """The code location's Definitions bound to these resources. The last one is kept (the command line runs
    every run of a command with the same resources); a new resources mapping builds a new one."""
    from media_routes.definitions import build_definitions

    global _LAST
    if _LAST is None or _LAST[0] is not resources:
        _LAST = (resources, build_definitions(resources=resources))
    return _LAST[1]


_LAST: tuple[Mapping[str, Any], dg.Definitions] | None = None


def materialize_stages(
    instance: dg.DagsterInstance,
    resources: Mapping[str, Any],
    stages: Sequence[str],
    partition_key: str | dg.MultiPartitionKey,
    *,
    seeds: dict[str, int] | None = None,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
    raise_on_error: bool = True,
) -> RunSummary:
    """One run of the code location's job for ``stages`` (``campaign_stills`` or ``format_deliverables``, the
    jobs the UI and the daemon launch), materializing only those stages for one partition."""
    stages = [s for s in STAGES if s in stages]
    mixed = {s in CAMPAIGN_STAGES for s in stages}
    if len(mixed) > 1:
        raise ValueError(f"cannot mix campaign and campaign x format stages in one run: {stages}")
    job_name = CAMPAIGN_JOB if stages[0] in CAMPAIGN_STAGES else FORMAT_JOB
    # Resolving the code location reads the defs state of "the current instance" (a context variable Dagster sets
    # when an instance is entered as a context manager): point it at the instance this run uses, not one an
    # earlier caller entered and closed (Dagster internal, pinned 1.13.27; test_cli covers it).
    with set_defs_state_storage(instance.defs_state_storage):
        job = _definitions(resources).resolve_job_def(job_name)
    result = job.execute_in_process(
        run_config=_run_config({k: v for k, v in (seeds or {}).items() if k in stages}, log_level),
        instance=instance,
        partition_key=str(partition_key),
        tags={**process_tags(), **(tags or {})},  # so a later command can recover it if this process dies
        raise_on_error=raise_on_error,
        asset_selection=[dg.AssetKey(s) for s in stages],
    )
    return RunSummary(run_id=result.run_id, partition=str(partition_key), stages=stages, success=result.success)


@dataclass(frozen=True)
class PlannedRun:
    stages: list[str]
    partition: str


def plan_runs(campaign_id: str, formats: Sequence[str], from_stage: str = FIRST_STAGE) -> list[PlannedRun]:
    """Runs needed to (re-)materialize ``from_stage`` and everything downstream for a campaign."""
    todo = downstream_of(from_stage)
    plan: list[PlannedRun] = []
    campaign_part = [s for s in todo if s in CAMPAIGN_STAGES]
    if campaign_part:
        plan.append(PlannedRun(campaign_part, campaign_id))
    format_part = [s for s in todo if s in FORMAT_STAGES]
    if format_part:
        plan += [PlannedRun(format_part, str(campaign_format_key(campaign_id, f))) for f in formats]
    return plan
