"""Which environment this code location runs in: one named setting, ``MEDIA_ROUTES_ENV``, read in one place.

========== ============ ======================================= =========================================
name       media store  credits state (cache index, ledger,     must be set
                        key locks, cached results)
========== ============ ======================================= =========================================
local      local files  SQLite + flock + files under the state  nothing (the default)
                        directory (one machine)
rehearsal  S3           PostgreSQL + advisory locks + S3        media and state buckets, the S3-compatible
                                                                endpoint, the state database
production S3           PostgreSQL + advisory locks + S3        media and state buckets, the state database
========== ============ ======================================= =========================================

``local`` keeps today's per-variable overrides (a developer may point only the media at S3, or only the state at
PostgreSQL). ``rehearsal`` and ``production`` are the several-machine topologies (deploy/, the rehearsal in
:mod:`media_routes.testing.rehearsal`): there a missing variable is an error when the code location loads, naming
every missing one, instead of a silent fallback to local files; several machines are safe only with all of the
media, the call cache index, its lock and its results shared (docs/credits.md), and a fallback to local state
would make each machine pay for its own copy of a result.

:func:`current` is called once, by :func:`media_routes.definitions.build_resources`; its name is a field of the
``providers`` resource, so the UI's Resources tab shows which environment the location loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from media_routes.credits import backends
from media_routes.defs import s3_store

ENV_NAME = "MEDIA_ROUTES_ENV"


@dataclass(frozen=True)
class Environment:
    name: str
    media_store: Literal["local", "s3"]
    shared_state: bool  # credits state shared between machines (PostgreSQL + S3)
    requires: tuple[str, ...]  # variables that must be set (non-empty)
    summary: str


_SHARED = (s3_store.ENV_BUCKET, backends.ENV_STATE_DB_URL, backends.ENV_STATE_S3_BUCKET)

ENVIRONMENTS: dict[str, Environment] = {
    "local": Environment("local", "local", False, (), "one machine: media, state and instance under DAGSTER_HOME"),
    "rehearsal": Environment(
        "rehearsal",
        "s3",
        True,
        (*_SHARED, s3_store.ENV_ENDPOINT),
        "the production topology on one machine (deploy/rehearse.py): an S3-compatible server and PostgreSQL",
    ),
    "production": Environment(
        "production", "s3", True, _SHARED, "several machines (deploy/): media and state in S3, state in PostgreSQL"
    ),
}


def current(environ: Mapping[str, str] | None = None) -> Environment:
    """The environment ``MEDIA_ROUTES_ENV`` names (default ``local``), checked: a ValueError names an unknown
    environment, every required variable that is missing, and a ``MEDIA_ROUTES_MEDIA_STORE`` that contradicts it."""
    environ = os.environ if environ is None else environ
    name = environ.get(ENV_NAME, "").strip().lower() or "local"
    if name not in ENVIRONMENTS:
        raise ValueError(f"{ENV_NAME}={name!r}: choose one of {', '.join(ENVIRONMENTS)}")
    env = ENVIRONMENTS[name]
    missing = [v for v in env.requires if not environ.get(v, "").strip()]
    if missing:
        raise ValueError(f"{ENV_NAME}={name} ({env.summary}) needs {', '.join(missing)}: set them or use local")
    store = environ.get(s3_store.ENV_STORE, "").strip().lower()
    if env.name != "local" and store and store != env.media_store:
        raise ValueError(f"{ENV_NAME}={name} keeps the media in {env.media_store}, but {s3_store.ENV_STORE}={store!r}")
    return env


def media_store_kind(env: Environment, environ: Mapping[str, str] | None = None) -> str:
    """``local`` or ``s3``: the environment's, or in ``local`` the ``MEDIA_ROUTES_MEDIA_STORE`` override."""
    environ = os.environ if environ is None else environ
    if env.name != "local":
        return env.media_store
    return s3_store.store_kind(environ)
