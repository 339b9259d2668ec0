"""Hosted provider adapters as Dagster resources, and the hub the stages use to reach them.

Keys come only from the environment through ``dg.EnvVar`` (the UI and the run config show the variable's
name, never its value); base URLs are configurable per provider so stubs, proxies and regions work. The
hub also owns the call cache, the credit ledger, route health and the per-provider concurrency slots,
all under one state directory (``$MEDIA_ROUTES_STATE_DIR``, default ``<DAGSTER_HOME>/credits``).

Shared state for several machines (:mod:`media_routes.credits.backends`), read from the environment once, when
the code location loads (:func:`provider_hub_from_env`), into fields of the hub (shown in the UI's Resources tab;
the database URL, which holds a password, as ``dg.EnvVar``):

* ``MEDIA_ROUTES_STATE_DB_URL`` (``postgresql://user:pass@host:5432/db``): the call cache index and the ledger
  on PostgreSQL instead of ``calls.sqlite`` / ``ledger.sqlite``, and the per-call-key lock a PostgreSQL
  advisory lock instead of a local ``flock``;
* ``MEDIA_ROUTES_STATE_S3_BUCKET`` (+ ``MEDIA_ROUTES_STATE_S3_PREFIX``, default ``call-cache``;
  ``MEDIA_ROUTES_S3_ENDPOINT_URL``; ``AWS_REGION``): the cached provider results in S3 instead of ``cache/``.

Route health and the provider slots stay local to the state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import httpx

from media_routes.credits import backends
from media_routes.credits.call_cache import CallCache
from media_routes.credits.ledger import DEFAULT_PRICES, Ledger, PriceTable
from media_routes.model_cards import ModelCard
from media_routes.providers import fal, gemini, kling
from media_routes.providers.slots import ProviderSlots
from media_routes.routing.health import HealthBook
from media_routes.routing.router import RouterContext

ENV_GLOBAL_BUDGET = "MEDIA_ROUTES_GLOBAL_BUDGET_CREDITS"


class GeminiResource(dg.ConfigurableResource):
    """Gemini API: Nano Banana / Nano Banana Pro images and Veo videos (``GEMINI_API_KEY``, ``GEMINI_BASE_URL``)."""

    api_key: str | None = None
    base_url: str = gemini.DEFAULT_BASE_URL
    max_concurrent: int = 4
    poll_interval_s: float = 10.0
    video_timeout_s: float = 900.0
    image_read_timeout_s: float = 180.0  # how long a generateContent answer may take (gemini.DEFAULT_IMAGE_TIMEOUT)

    def image_client(self) -> gemini.GeminiImageClient:
        timeout = httpx.Timeout(connect=10.0, read=self.image_read_timeout_s, write=60.0, pool=30.0)
        return gemini.GeminiImageClient(str(self.api_key or ""), base_url=self.base_url, timeout=timeout)

    def veo_client(self) -> gemini.VeoClient:
        return gemini.VeoClient(str(self.api_key or ""), base_url=self.base_url)


class FalResource(dg.ConfigurableResource):
    """fal queue API (``FAL_KEY``, ``FAL_QUEUE_URL``, ``FAL_BASE_URL``)."""

    api_key: str | None = None
    queue_url: str = fal.DEFAULT_QUEUE_URL
    base_url: str = fal.DEFAULT_BASE_URL
    max_concurrent: int = 4
    poll_interval_s: float = 1.0
    job_timeout_s: float = 600.0

    def client(self) -> fal.FalQueueClient:
        return fal.FalQueueClient(
            str(self.api_key or ""),
            queue_url=self.queue_url,
            base_url=self.base_url,
            poll_interval_s=self.poll_interval_s,
            job_timeout_s=self.job_timeout_s,
        )


class KlingResource(dg.ConfigurableResource):
    """Kling official API (``KLING_ACCESS_KEY`` + ``KLING_SECRET_KEY``, ``KLING_BASE_URL``)."""

    access_key: str | None = None
    secret_key: str | None = None
    base_url: str = kling.DEFAULT_BASE_URL
    max_concurrent: int = 2
    poll_interval_s: float = 10.0
    video_timeout_s: float = 900.0

    def client(self) -> kling.KlingClient:
        return kling.KlingClient(str(self.access_key or ""), str(self.secret_key or ""), base_url=self.base_url)


class ProviderHub(dg.ConfigurableResource):
    """Everything a stage needs to call a hosted route: adapters, cache, ledger, health, slots, retry policy."""

    gemini: GeminiResource
    fal: FalResource
    kling: KlingResource
    state_dir: str
    environment: str = "local"  # $MEDIA_ROUTES_ENV, the named environment the location loaded (defs/environment.py)
    prices_path: str = str(DEFAULT_PRICES)
    max_attempts: int = 4
    retry_base_delay_s: float = 1.0
    retry_budget_s: float = 300.0
    health_threshold: int = 3
    global_budget_credits: float | None = None  # across every campaign ($MEDIA_ROUTES_GLOBAL_BUDGET_CREDITS)
    # where the call cache index, ledger and cached results live (credits/backends.py); unset: under state_dir
    state_db_url: str | None = None  # $MEDIA_ROUTES_STATE_DB_URL (PostgreSQL; a secret: bound as dg.EnvVar)
    state_s3_bucket: str | None = None  # $MEDIA_ROUTES_STATE_S3_BUCKET
    state_s3_prefix: str = backends.DEFAULT_S3_PREFIX  # $MEDIA_ROUTES_STATE_S3_PREFIX
    s3_endpoint_url: str | None = None  # $MEDIA_ROUTES_S3_ENDPOINT_URL (an S3-compatible endpoint)
    aws_region: str | None = None  # $AWS_REGION

    def _state(self) -> Path:
        return Path(self.state_dir).expanduser()

    def _state_db_url(self) -> str | None:
        """The database URL: a plain string inside a run; outside one (the command line uses the hub directly) a
        field bound to ``dg.EnvVar`` still holds the variable's name, so it is read here."""
        value = self.state_db_url
        return value.get_value() if isinstance(value, dg.EnvVar) else value

    def missing_credentials(self, card: ModelCard) -> list[str]:
        have = {
            "GEMINI_API_KEY": self.gemini.api_key,
            "FAL_KEY": self.fal.api_key,
            "KLING_ACCESS_KEY": self.kling.access_key,
            "KLING_SECRET_KEY": self.kling.secret_key,
        }
        return [name for name in card.credentials if not (have.get(name) or "").strip()]

    def prices(self) -> PriceTable:
        return PriceTable.from_yaml(Path(self.prices_path))

    def cache(self) -> CallCache:
        """The call cache: index and lock on ``state_db_url`` or SQLite, results on ``state_s3_bucket`` or files."""
        local = self._state() / "cache"
        blobs = backends.blob_store(
            self.state_s3_bucket,
            local,
            prefix=self.state_s3_prefix,
            endpoint_url=self.s3_endpoint_url,
            region=self.aws_region,
        )
        return CallCache(local, backends.state_db(self._state_db_url(), self._state() / "calls.sqlite"), blobs=blobs)

    def ledger(self) -> Ledger:
        """The ledger: on PostgreSQL at ``state_db_url`` when set, else ``state_dir/ledger.sqlite``."""
        return Ledger(backends.state_db(self._state_db_url(), self._state() / "ledger.sqlite"), self.prices())

    def health(self) -> HealthBook:
        return HealthBook(self._state() / "health.sqlite", threshold=self.health_threshold)

    def pool_limits(self) -> dict[str, int]:
        """Concurrent jobs allowed per provider: the client-side slots, and each Dagster pool's initial limit."""
        return {
            "google": self.gemini.max_concurrent,
            "fal": self.fal.max_concurrent,
            "kling": self.kling.max_concurrent,
        }

    def slots(self, provider: str) -> ProviderSlots:
        return ProviderSlots(self._state() / "slots", provider, self.pool_limits()[provider])

    def router_context(self) -> RouterContext:
        health = self.health()
        return RouterContext(
            prices=self.prices(), missing_credentials=self.missing_credentials, health=lambda c: health.status(c.id)
        )


def _env(name: str) -> str | None:
    """``dg.EnvVar(name)`` when the variable is set (resolved in the run worker), else None (route rejected)."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


def _env_or(name: str, default: str) -> str:
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else default


def provider_hub_from_env(state_dir: str, *, environment: str = "local") -> ProviderHub:
    return ProviderHub(
        environment=environment,
        gemini=GeminiResource(
            api_key=_env(gemini.ENV_API_KEY), base_url=_env_or(gemini.ENV_BASE_URL, gemini.DEFAULT_BASE_URL)
        ),
        fal=FalResource(
            api_key=_env(fal.ENV_KEY),
            queue_url=_env_or(fal.ENV_QUEUE_URL, fal.DEFAULT_QUEUE_URL),
            base_url=_env_or(fal.ENV_BASE_URL, fal.DEFAULT_BASE_URL),
        ),
        kling=KlingResource(
            access_key=_env(kling.ENV_ACCESS_KEY),
            secret_key=_env(kling.ENV_SECRET_KEY),
            base_url=_env_or(kling.ENV_BASE_URL, kling.DEFAULT_BASE_URL),
        ),
        state_dir=state_dir,
        global_budget_credits=float(os.environ[ENV_GLOBAL_BUDGET]) if os.environ.get(ENV_GLOBAL_BUDGET) else None,
        state_db_url=_env(backends.ENV_STATE_DB_URL),
        state_s3_bucket=os.environ.get(backends.ENV_STATE_S3_BUCKET, "").strip() or None,
        state_s3_prefix=os.environ.get(backends.ENV_STATE_S3_PREFIX, "").strip() or backends.DEFAULT_S3_PREFIX,
        s3_endpoint_url=os.environ.get(backends.ENV_S3_ENDPOINT) or None,
        aws_region=os.environ.get(backends.ENV_REGION) or None,
    )
