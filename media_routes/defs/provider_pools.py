"""One Dagster concurrency pool per hosted provider: ``provider_google``, ``provider_fal``, ``provider_kling``.

A stage's route is chosen at run time, so a provider pool cannot be a static ``pool=`` on the asset (which
keeps ``local_engine``). Instead every paid provider job claims a slot of its provider's pool in the Dagster
instance, through the same storage calls the executor uses for ``pool=``, and frees it when the job ends:

* the pools are real Dagster pools: the UI's concurrency page and ``dagster instance concurrency get`` show
  them with their holders (run id, ``<stage>:<provider>:<id>``), and they are shared by every run worker of
  the instance, on every machine when the instance is on Postgres (deploy/);
* limits: a pool that does not exist yet is created with the provider resource's ``max_concurrent``; after
  that the instance's limit is the one in force, so an operator changes it in the UI or with
  ``dagster instance concurrency set provider_fal 8`` without a deploy;
* a claim that is still pending or held when the step dies is freed by Dagster with the run
  (``run_monitoring.free_slots_after_run_end_seconds`` in dagster.yaml), and here in ``finally``.

The machine-wide client-side limiter (``providers/slots.py``) still applies inside the pool slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

POOL_PREFIX = "provider_"


def provider_pool(provider: str) -> str:
    return f"{POOL_PREFIX}{provider}"


class ProviderPools:
    """Claims provider pool slots for the steps of one run (``context.instance``, ``context.run.run_id``)."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        step: str,
        limits: dict[str, int],
        *,
        poll_s: float = 0.25,
        log: dg.DagsterLogManager | None = None,
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.step = step
        self.limits = limits
        self.poll_s = poll_s
        self.log = log

    @property
    def supported(self) -> bool:
        return bool(self.instance.event_log_storage.supports_global_concurrency_limits)

    def ensure_limit(self, provider: str) -> int | None:
        """Create the provider's pool with the resource's limit if the instance has none; return the limit."""
        storage = self.instance.event_log_storage
        pool = provider_pool(provider)
        info = storage.get_concurrency_info(pool)
        if info.slot_count == 0 and provider in self.limits:
            storage.set_concurrency_slots(pool, self.limits[provider])
            info = storage.get_concurrency_info(pool)
        return info.slot_count

    @contextmanager
    def slot(self, provider: str) -> Iterator[None]:
        """Hold one slot of ``provider``'s pool (waiting for it) for one provider job."""
        if not self.supported:
            yield
            return
        storage = self.instance.event_log_storage
        pool = provider_pool(provider)
        self.ensure_limit(provider)
        step_key = f"{self.step}:{provider}:{uuid.uuid4().hex[:8]}"
        start = time.monotonic()
        told = False
        try:
            while not storage.claim_concurrency_slot(pool, self.run_id, step_key).is_claimed:
                if not told and time.monotonic() - start > 1.0 and self.log is not None:
                    self.log.info(f"waiting for a slot of Dagster pool {pool!r}")
                    told = True
                time.sleep(self.poll_s)
            yield
        finally:
            storage.free_concurrency_slot_for_step(self.run_id, step_key)
