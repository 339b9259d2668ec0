"""Top-level Dagster definitions for media_routes (loaded by workspace.yaml and `dagster dev`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager

from media_routes import settings
from media_routes.defs import environment
from media_routes.defs.automation import automation_sensor, with_automation
from media_routes.defs.campaign_specs import SPEC_SLICE_ASSETS
from media_routes.defs.jobs import JOBS
from media_routes.defs.providers import ProviderHub, provider_hub_from_env
from media_routes.defs.resources import CampaignCatalog, MediaStore
from media_routes.defs.review import review_still
from media_routes.defs.s3_store import io_manager_from_env, media_store_from_env
from media_routes.defs.schedules import campaign_refresh_schedule
from media_routes.defs.sensors import campaign_folder_sensor
from media_routes.defs.stages import STAGE_ASSETS


class Resources(TypedDict):
    """What :func:`build_resources` returns: the resource keys the stages, sensors and schedules use."""

    campaigns: CampaignCatalog
    media_store: MediaStore
    providers: ProviderHub
    io_manager: NotRequired[S3PickleIOManager]  # only with the media on S3; else Dagster's filesystem one


def build_resources(
    *, campaigns_dir: str | None = None, media_root: str | None = None, state_dir: str | None = None
) -> Resources:
    """Resources for the environment ``MEDIA_ROUTES_ENV`` names (:mod:`media_routes.defs.environment`: local,
    rehearsal or production): the one place where backends (local files or S3, SQLite or PostgreSQL) are chosen.

    Hosted providers read their keys and base URLs from the environment (``dg.EnvVar``); without keys
    every hosted route is rejected by the router and the profiles fall back to the local engine.
    """
    env = environment.current()  # MEDIA_ROUTES_ENV: local / rehearsal / production, checked here, once
    store = environment.media_store_kind(env)
    resources: Resources = {
        "campaigns": CampaignCatalog(campaigns_dir=campaigns_dir or str(settings.campaigns_dir())),
        "media_store": media_store_from_env(media_root or str(settings.media_root()), store),
        "providers": provider_hub_from_env(state_dir or _state_dir_beside(media_root), environment=env.name),
    }
    io_manager = io_manager_from_env(store)  # stage outputs on S3 beside the media, so any machine's run loads them
    if io_manager is not None:
        resources["io_manager"] = io_manager
    return resources


def _state_dir_beside(media_root: str | None) -> str:
    """Credits state next to an explicit media root (tests, benchmarks), else the configured default."""
    if media_root and not os.environ.get(settings.ENV_STATE_DIR):
        return str(Path(media_root).parent / "credits")
    return str(settings.state_dir())


def build_definitions(
    *,
    campaigns_dir: str | None = None,
    media_root: str | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """The code location: what ``dagster dev``, the daemon and the code server load, and what the command line and
    the tests execute in-process (``media_routes.pipeline``), so there is one graph with one set of jobs."""
    resources = (
        resources if resources is not None else build_resources(campaigns_dir=campaigns_dir, media_root=media_root)
    )
    return dg.Definitions(
        assets=[
            *SPEC_SLICE_ASSETS,
            *with_automation(STAGE_ASSETS, resources["campaigns"].campaigns_dir),
        ],
        jobs=[*JOBS, review_still],
        schedules=[campaign_refresh_schedule],
        sensors=[campaign_folder_sensor, automation_sensor],
        resources=resources,
    )


defs = build_definitions()
