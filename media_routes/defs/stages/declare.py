"""``stage_asset``: one stage of media_routes/stages.py as a Dagster asset, with what every stage shares.

Group, owners, code version, partitions (campaign or campaign x format, from the declaration), the dependency on
its slice of the campaign spec, the local-engine pool, the retry policy for transient failures, and its checks.
"""

from __future__ import annotations

import functools
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from media_routes.defs.campaign_specs import slice_key
from media_routes.defs.partitions import stage_partitions
from media_routes.defs.stages.checks import COMMON_CHECKS
from media_routes.stages import get_stage

GROUP = "media_pipeline"
OWNERS = ["team:creative-ops"]

# Pool of the local engine's steps: CPU-bound image work, limited per instance in dagster.yaml
# (concurrency.pools). Each hosted provider has its own Dagster pool, claimed per provider job at run time
# (defs/provider_pools.py: provider_google, provider_fal, provider_kling), plus client-side slots.
LOCAL_ENGINE_POOL = "local_engine"

# Transient failures (a full disk, a lost file handle, a killed subprocess) are retried with backoff and
# jitter; failures that cannot change on a retry (invalid spec, missing approval, no adapter) are raised
# as ``dg.Failure(allow_retries=False)`` and fail at once.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# What a retry can fix: the file system and the OS (a full disk, a lost handle, a reset pipe: OSError and its
# subclasses ConnectionError and TimeoutError), memory taken by another process, a killed encoder subprocess, a
# locked SQLite ledger. Every other exception of a stage body (a ValueError from bad data, a bug) fails the same
# way on a retry, so it fails the step once, with its reason, instead of three times over 15 s.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    MemoryError,
    subprocess.SubprocessError,
    sqlite3.OperationalError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def retry_only_transient(stage: str, body: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """``body`` (a stage's generator) with every non-transient exception raised as ``dg.Failure(allow_retries=False)``
    naming the stage, the exception type and its message; the original stays chained for the UI and --verbose.
    Dagster's own exceptions (a ``dg.Failure`` already decided, a ``RetryRequested``) pass unchanged."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from body(*args, **kwargs)
        except (dg.Failure, dg.RetryRequested, dg.DagsterError):
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            raise dg.Failure(
                description=f"{type(exc).__name__}: {exc} (not retried: it would fail the same way)",
                allow_retries=False,
            ) from exc

    return run


class StageConfig(dg.Config):
    """Run parameters for a stage. ``seed`` overrides the spec's seed (used by ``media-routes reroll``)."""

    seed: int | None = None


def stage_asset(
    stage: str,
    *,
    code_version: str,
    kinds: set[str],
    description: str,
    extra_checks: dict[str, tuple[str, bool]] | None = None,
) -> Any:
    """``@dg.asset`` for one declared stage. ``extra_checks`` maps a check name to (description, blocking)."""
    checks = COMMON_CHECKS | (extra_checks or {})
    name = get_stage(stage).name
    decorate = dg.asset(
        name=name,
        deps=[slice_key(name)],  # its slice of the campaign spec: an edit there makes this stage stale
        pool=LOCAL_ENGINE_POOL,
        retry_policy=TRANSIENT_RETRY,
        group_name=GROUP,
        owners=OWNERS,
        partitions_def=stage_partitions(name),
        code_version=code_version,
        kinds=kinds,
        description=description,
        check_specs=[
            dg.AssetCheckSpec(check, asset=name, description=desc, blocking=blocking)
            for check, (desc, blocking) in checks.items()
        ],
    )
    return lambda body: decorate(retry_only_transient(name, body))
