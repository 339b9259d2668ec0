"""Environment-driven defaults shared by the CLI and the Dagster definitions."""

from __future__ import annotations

import math
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

ENV_CAMPAIGNS_DIR = "MEDIA_ROUTES_CAMPAIGNS_DIR"
ENV_MEDIA_ROOT = "MEDIA_ROUTES_MEDIA_ROOT"
DEFAULT_HOME_NAME = ".dagster_home"


def campaigns_dir() -> Path:
    """Where campaign specs live: $MEDIA_ROUTES_CAMPAIGNS_DIR, else ./campaigns, else the repo's."""
    if os.environ.get(ENV_CAMPAIGNS_DIR):
        return Path(os.environ[ENV_CAMPAIGNS_DIR]).expanduser().resolve()
    cwd = Path.cwd() / "campaigns"
    return cwd.resolve() if cwd.is_dir() else REPO_ROOT / "campaigns"


def dagster_home() -> Path:
    """$DAGSTER_HOME when set, else ./.dagster_home (created on demand by the CLI)."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
    return (Path.cwd() / DEFAULT_HOME_NAME).resolve()


def media_root() -> Path:
    """Root of the local media store: $MEDIA_ROUTES_MEDIA_ROOT, else <dagster home>/media."""
    if os.environ.get(ENV_MEDIA_ROOT):
        return Path(os.environ[ENV_MEDIA_ROOT]).expanduser().resolve()
    return dagster_home() / "media"


ENV_STATE_DIR = "MEDIA_ROUTES_STATE_DIR"


def state_dir() -> Path:
    """Call cache, ledger, route health, provider slots: $MEDIA_ROUTES_STATE_DIR, else <dagster home>/credits."""
    if os.environ.get(ENV_STATE_DIR):
        return Path(os.environ[ENV_STATE_DIR]).expanduser().resolve()
    return dagster_home() / "credits"


ENV_SENSOR_INTERVAL_S = "MEDIA_ROUTES_SENSOR_INTERVAL_S"
DEFAULT_SENSOR_INTERVAL_S = 30


def sensor_interval_s() -> int:
    """``minimum_interval_seconds`` of the automation sensor (and at most that of the folder sensor): 30, or
    $MEDIA_ROUTES_SENSOR_INTERVAL_S (the deployment tests set 5 so they do not wait out 30 s ticks)."""
    value = os.environ.get(ENV_SENSOR_INTERVAL_S, "").strip()
    if not value:
        return DEFAULT_SENSOR_INTERVAL_S
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_SENSOR_INTERVAL_S} must be a whole number of seconds >= 1, not {value!r}")
    return int(value)


ENV_SENSOR_TICK_BUDGET_S = "MEDIA_ROUTES_SENSOR_TICK_BUDGET_S"
DEFAULT_SENSOR_TICK_BUDGET_S = 20.0


def sensor_tick_budget_s() -> float:
    """Seconds of validation and instance writes one campaign folder sensor tick may spend before it leaves
    the rest of a large drop to the next tick: 20 (the code server's sensor timeout is 60 s), or
    $MEDIA_ROUTES_SENSOR_TICK_BUDGET_S."""
    value = os.environ.get(ENV_SENSOR_TICK_BUDGET_S, "").strip()
    if not value:
        return DEFAULT_SENSOR_TICK_BUDGET_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 50:
        raise ValueError(f"{ENV_SENSOR_TICK_BUDGET_S} must be a number of seconds in (0, 50], not {value!r}")
    return seconds


def folder_sensor_interval_s() -> int:
    """``minimum_interval_seconds`` of the campaign folder sensor: the tick budget (20 s), or the sensor interval
    if that is shorter. A tick that pages a large drop of new specs uses its whole budget; starting the next one
    as soon as it ends processes the drop without idle gaps (10,000 specs: 78 ticks of at most 22 s), while an
    unchanged tick costs under 1 s at 10,000 campaigns. The automation sensor keeps :func:`sensor_interval_s`."""
    return min(sensor_interval_s(), max(1, math.ceil(sensor_tick_budget_s())))
