"""Snapshot of everything the code location declares (issue #12): a refactor must not change it unnoticed.

Every asset spec (key, deps, partitions, group, owners, kinds, code version, pool, retry policy, automation
condition, tags, description), every asset check (blocking or not), job, schedule, sensor and resource is
rendered to plain data and compared with ``__snapshots__/test_definitions_snapshot.ambr``. A deliberate
change is recorded with ``pytest media_routes_tests/test_definitions_snapshot.py --snapshot-update`` and
shows up in review as a diff of that file.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from media_routes.definitions import defs


def _partitions(pd: dg.PartitionsDefinition | None) -> Any:
    if pd is None:
        return None
    if isinstance(pd, dg.MultiPartitionsDefinition):
        return {"multi": {d.name: _partitions(d.partitions_def) for d in pd.partitions_defs}}
    if isinstance(pd, dg.DynamicPartitionsDefinition):
        return {"dynamic": pd.name}
    if isinstance(pd, dg.StaticPartitionsDefinition):
        return {"static": list(pd.get_partition_keys())}
    return type(pd).__name__


def _condition(cond: dg.AutomationCondition | None, *, root: bool = True) -> Any:
    """The condition tree; a labelled Dagster condition (``eager``) below the root is shown by its label."""
    if cond is None:
        return None
    node: dict[str, Any] = {"type": type(cond).__name__, "label": cond.get_label(), "name": cond.name}
    if not root and node["label"] and type(cond).__module__.startswith("dagster."):
        return node
    children = [_condition(c, root=False) for c in cond.children]
    if children:
        node["children"] = children
    return node


def _retry(policy: dg.RetryPolicy | None) -> Any:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay": policy.delay,
        "backoff": str(policy.backoff),
        "jitter": str(policy.jitter),
    }


def _assets() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    out: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets_def = node.assets_def
        op = assets_def.op if assets_def.is_executable and not node.is_observable else None
        out[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "observable": node.is_observable,
            "group": node.group_name,
            "owners": list(node.owners),
            "kinds": sorted(node.kinds),
            "code_version": node.code_version,
            "pool": op.pool if op is not None else None,
            "retry_policy": _retry(op.retry_policy) if op is not None else None,
            "automation": _condition(node.automation_condition),
            "tags": dict(sorted(node.tags.items())),
            "description": node.description,
            "checks": {
                spec.name: {"blocking": spec.blocking, "description": spec.description}
                for spec in sorted(assets_def.check_specs, key=lambda s: s.name)
                if spec.asset_key == key
            },
        }
    return out


def _jobs() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        out[job.name] = {
            "description": job.description,
            "ops": sorted(job.graph.node_dict),
            "partitioned": job.partitions_def is not None,
            "tags": dict(sorted(job.tags.items())),
        }
    return out


def _schedules() -> dict[str, Any]:
    return {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "default_status": str(s.default_status),
            "job": s.job_name,
            "description": s.description,
        }
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }


def _sensors() -> dict[str, Any]:
    return {
        s.name: {
            "type": type(s).__name__,
            "default_status": str(s.default_status),
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "description": s.description,
        }
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }


def _resources() -> dict[str, str]:
    return {name: type(res).__name__ for name, res in sorted((defs.resources or {}).items())}


def test_asset_specs_snapshot(snapshot: Any) -> None:
    assert _assets() == snapshot


def test_jobs_schedules_sensors_resources_snapshot(snapshot: Any) -> None:
    assert {"jobs": _jobs(), "schedules": _schedules(), "sensors": _sensors(), "resources": _resources()} == snapshot
