"""Running a stage's route plan: try the chosen route, fall back in order, account for every call.

Every hosted call goes through :meth:`HostedCalls.call`: the content-addressed call cache (an identical
call is never paid twice, the result is stored before it is used), the credit ledger (every call and hit
priced), the provider's concurrency slots and the bounded retry policy. :func:`run_plan` walks the ranked
candidates: an outage (server error, timeout, rate limit or quota once retries are spent) moves to the next
candidate and is recorded; a content block moves on only if the profile allows it; anything else fails the
stage with the provider, model, reason and request id.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from media_routes.credits.call_cache import call_key
from media_routes.credits.ledger import Units, cached_call
from media_routes.providers.errors import (
    ContentBlocked,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
)
from media_routes.providers.retry import call_with_retries
from media_routes.routing.router import Candidate, RoutePlan

T = TypeVar("T")
OUTAGES = (ServerError, ProviderTimeout, RateLimited, QuotaExhausted)


@dataclass(frozen=True)
class CallRecord:
    route: str
    op: str
    key: str
    hit: bool
    credits: float
    saved_credits: float
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "op": self.op,
            "call_key": self.key,
            "cache": "hit" if self.hit else "miss",
            "credits": self.credits,
            "saved_credits": self.saved_credits,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Attempt:
    route: str
    outcome: str  # "ok", "fallback", "failed"
    reason: str = ""


class BudgetExceeded(Exception):
    """A paid call refused before it was made: it would take the spend over a budget."""


class RouteFailed(Exception):
    """No candidate produced the stage's output. ``retryable``: an outage that a later retry may outlive."""

    def __init__(self, message: str, *, retryable: bool, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts


@dataclass
class HostedCalls:
    """The provider calls of one stage materialization, with the hub's cache, ledger, slots and retries."""

    hub: Any  # media_routes.defs.providers.ProviderHub (not imported: keeps this module Dagster-free)
    run_id: str
    campaign: str
    stage: str
    format_key: str | None
    log: logging.Logger | Any
    budget_credits: float | None = None  # the campaign's budget (spec ``budget.credits``)
    # one slot of the provider's Dagster pool per paid job (defs/provider_pools.py); None outside Dagster
    pool_slot: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None
    records: list[CallRecord] = field(default_factory=list)

    @cached_property
    def _cache(self) -> Any:
        return self.hub.cache()

    @cached_property
    def _ledger(self) -> Any:
        return self.hub.ledger()

    def _check_budget(self, cand: Candidate, credits: float) -> None:
        """Refuse (and record) a paid call that would take the campaign's or the global spend over budget."""
        ledger = self._ledger
        limits = [("campaign", self.budget_credits, ledger.spent(self.campaign))]
        if self.hub.global_budget_credits is not None:
            limits.append(("global", self.hub.global_budget_credits, ledger.spent()))
        for scope, budget, spent in limits:
            if budget is not None and spent + credits > budget + 1e-9:
                ledger.refuse(
                    run_id=self.run_id,
                    campaign=self.campaign,
                    format=self.format_key,
                    stage=self.stage,
                    provider=cand.provider,
                    model=cand.price_model or cand.model,
                    credits=credits,
                    scope=scope,
                    budget=budget,
                    spent=spent,
                )
                where = f"campaign {self.campaign!r}" if scope == "campaign" else "the global budget"
                raise BudgetExceeded(
                    f"budget exceeded, call refused before it was made: {cand.route} needs {credits:g} credits and "
                    f"{where} has {spent:g} of {budget:g} spent ({max(0.0, budget - spent):g} left)"
                )

    def call(
        self,
        cand: Candidate,
        *,
        op: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, str],
        seed: int | None,
        units: Units,
        fn: Callable[[], bytes],
    ) -> bytes:
        """One billable provider call through cache, ledger, slots and retries; returns the raw result bytes."""
        key = call_key(cand.provider, cand.model, None, {"op": op, **params}, inputs, seed)
        hub = self.hub
        started = time.perf_counter()
        price_model = cand.price_model or cand.model
        credits, _ = self._ledger.prices.price(cand.provider, price_model, units)
        cache = self._cache
        if key not in cache:  # a cache hit costs nothing: only a paid call is checked against the budgets
            self._check_budget(cand, credits)

        def paid() -> bytes:
            pool = self.pool_slot(cand.provider) if self.pool_slot else contextlib.nullcontext()
            with pool, hub.slots(cand.provider) as slot:
                if slot.waited_s > 1:
                    self.log.info(f"{cand.route}: waited {slot.waited_s:.1f} s for a {cand.provider} slot")

                def on_retry(err: ProviderError, attempt: int, delay: float) -> None:
                    self.log.warning(f"{cand.route} {op}: attempt {attempt} failed ({err}); retrying in {delay:.1f} s")

                return call_with_retries(
                    fn,
                    max_attempts=hub.max_attempts,
                    base_delay=hub.retry_base_delay_s,
                    total_budget_s=hub.retry_budget_s,
                    on_retry=on_retry,
                )

        result = cached_call(
            cache,
            self._ledger,
            key=key,
            fn=paid,
            run_id=self.run_id,
            campaign=self.campaign,
            stage=self.stage,
            format=self.format_key,
            provider=cand.provider,
            model=price_model,
            units=units,
            meta={"route": cand.route, "op": op},
        )
        record = CallRecord(
            route=cand.route,
            op=op,
            key=key,
            hit=result.hit,
            credits=0.0 if result.hit else credits,
            saved_credits=credits if result.hit else 0.0,
            seconds=time.perf_counter() - started,
        )
        self.records.append(record)
        self.log.info(
            f"{cand.route} {op}: " + (f"cache hit, saved {credits:g} credits" if result.hit else f"{credits:g} credits")
        )
        return result.data

    def summary(self) -> dict[str, Any]:
        return {
            "calls": len([r for r in self.records if not r.hit]),
            "cache_hits": len([r for r in self.records if r.hit]),
            "credits": round(sum(r.credits for r in self.records), 6),
            "saved_credits": round(sum(r.saved_credits for r in self.records), 6),
            "detail": [r.as_json() for r in self.records],
        }


def run_plan(
    plan: RoutePlan,
    attempt: Callable[[Candidate], T],
    *,
    log: logging.Logger | Any,
    health: Any | None = None,
) -> tuple[T, Candidate, list[Attempt]]:
    """Try the plan's candidates in order; see the module docstring for when it moves on."""
    attempts: list[Attempt] = []
    if plan.chosen is None:
        reasons = "; ".join(f"{c.route}: {', '.join(c.rejected)}" for c in plan.rejected)
        raise RouteFailed(f"{plan.stage}: no admissible route ({reasons})", retryable=False, attempts=attempts)
    for i, cand in enumerate(plan.ranked):
        nxt = plan.ranked[i + 1].route if i + 1 < len(plan.ranked) else None
        try:
            value = attempt(cand)
        except BudgetExceeded as exc:
            attempts.append(Attempt(cand.route, "refused", str(exc)))
            raise RouteFailed(f"{plan.stage}: {exc}", retryable=False, attempts=attempts) from None
        except ProviderError as err:
            outage = isinstance(err, OUTAGES)
            blocked = isinstance(err, ContentBlocked)
            reason = str(err)
            if outage and health is not None:
                health.record(cand.route, ok=False, reason=f"{type(err).__name__}: {err.reason}"[:300])
            if nxt is not None and (outage or (blocked and plan.profile.reroute_on_block)):
                why = "outage" if outage else "content block (the profile allows re-routing)"
                log.warning(f"{plan.stage}: {cand.route} failed ({why}): {reason}; falling back to {nxt}")
                attempts.append(Attempt(cand.route, "fallback", reason))
                continue
            attempts.append(Attempt(cand.route, "failed", reason))
            retryable = outage
            detail = "" if nxt is None else " (the profile does not re-route on a content block)" if blocked else ""
            raise RouteFailed(
                f"{plan.stage} failed on {cand.route}{detail}: {reason}", retryable=retryable, attempts=attempts
            ) from err
        if health is not None and cand.provider != "local":
            health.record(cand.route, ok=True)
        attempts.append(Attempt(cand.route, "ok"))
        return value, cand, attempts
    raise AssertionError("unreachable: the last candidate either returns or raises")
