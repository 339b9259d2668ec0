"""Running a stage's route plan: try the chosen route, fall back in order, account for every call.

Every hosted call goes through :meth:`HostedCalls.call`: the content-addressed call cache (an identical
call is never paid twice, the result is stored before it is used), the credit ledger (every call and hit
priced, and every answer the provider may bill accounted when it arrives, before it is parsed), the provider's
concurrency slots and the bounded retry policy, whose send count per call key and run lives in the call cache
index (so a Dagster step retry continues it). :func:`run_plan` walks the ranked candidates: an outage (server
error, timeout, rate limit or quota once retries are spent) moves to the next candidate and is recorded; a
content block moves on only if the profile allows it; a paid answer that is unusable and anything else fail the
stage with the provider, model, reason and request id. No provider failure is retried by Dagster (docs/routing.md,
"Retries").

A long-running job (a Veo operation, a Kling task, a fal queue request) is kept under its call key once the
provider gives its id (``CallCache.record_job``). An attempt of the same call after a poll timeout, a killed run or a
failed download waits on that job and fetches its result instead of submitting a new one
(``receipts.submit_or_resume``); the job's finish is billed once, on the row its first report wrote. While such a
job is pending the stage does not fall back to another route (that would pay twice): it fails saying the job is
kept and a new run fetches it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from media_routes.credits.call_cache import (
    JOB_FAILED,
    JOB_GONE,
    JOB_READY,
    JOB_STORED,
    JOB_SUBMITTED,
    CallJob,
    call_key,
)
from media_routes.credits.ledger import RECEIVED, ActualCost, LedgerRow, Units, cached_call
from media_routes.providers import receipts
from media_routes.providers.errors import (
    BadRequest,
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


class SendBudgetSpent(ProviderError):
    """This call key was already sent the most times one run may send it (``ProviderHub.max_attempts``)."""


class PaidAnswerUnusable(ProviderError):
    """The provider answered (and may bill) but the answer is unusable; it is not re-sent automatically."""


def outcome_of(err: BaseException) -> str:
    """The ledger outcome of a paid answer that ended in ``err``: blocked, unparseable or failed."""
    if isinstance(err, ContentBlocked):
        return "failed" if err.retryable else "blocked"  # NO_IMAGE / OTHER / no candidates: no block, no output
    if isinstance(err, ServerError) and err.status_code is not None and 200 <= err.status_code < 300:
        return "unparseable"  # a 2xx whose body or image could not be read
    if isinstance(err, ProviderError):
        return "failed"
    return "unparseable"  # an unexpected exception while reading the answer


@dataclass(frozen=True)
class CallRecord:
    route: str
    op: str
    key: str
    hit: bool
    credits: float
    saved_credits: float
    seconds: float
    outcome: str = "usable"
    billed: bool = True
    request_id: str | None = None
    actual_credits: float | None = None  # what the provider's reported usage costs (None: not reported)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "route": self.route,
            "op": self.op,
            "call_key": self.key,
            "cache": "hit" if self.hit else "miss",
            "credits": self.credits,
            "saved_credits": self.saved_credits,
            "seconds": round(self.seconds, 3),
        }
        if not self.hit:
            out["actual_credits"] = self.actual_credits  # null: the provider reported no usage for this call
        if self.outcome != "usable":
            out |= {"outcome": self.outcome, "billed": self.billed, "request_id": self.request_id}
        return out


@dataclass(frozen=True)
class Attempt:
    route: str
    outcome: str  # "ok", "fallback", "failed"
    reason: str = ""


class BudgetExceeded(Exception):
    """A paid call refused before it was made: it would take the spend over a budget."""


class RouteFailed(Exception):
    """No candidate produced the stage's output. ``retryable``: whether a Dagster step retry may help (never for a
    provider's answer: those are retried, within the send budget, by :meth:`HostedCalls.call`).

    ``line`` is the one-line reason the command line prints: stage, provider, model, reason, request id.
    """

    def __init__(self, message: str, *, retryable: bool, attempts: list[Attempt], line: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts
        self.line = line or message


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
        """One billable provider call through cache, ledger, slots and retries; returns the raw result bytes.

        Under the call key's lock, each send is counted in the cache index first (at most ``hub.max_attempts``
        sends per key and run, whichever layer re-sends); each billable answer the adapter reports (a receipt) is
        written to the ledger on arrival, then settled: ``usable`` when the result is stored, else the outcome of
        the error. A paid answer is never re-sent automatically: not by the retry loop, not by a later run (see
        :meth:`_refuse_resending_a_paid_failure`).
        """
        key = call_key(cand.provider, cand.model, None, {"op": op, **params}, inputs, seed)
        hub = self.hub
        started = time.perf_counter()
        price_model = cand.price_model or cand.model
        credits, _ = self._ledger.prices.price(cand.provider, price_model, units)
        cache = self._cache
        ledger = self._ledger
        if key not in cache:  # a cache hit costs nothing: only a paid call is checked against the budgets
            earlier_job = cache.resumable_job(key)
            if cache.kept_answer_exists(key):
                pass  # an answer paid for by a run that stopped: parsed again (in `paid`, under the key's lock)
            elif earlier_job is None:
                self._refuse_resending_a_paid_failure(cand, key)
                self._check_budget(cand, credits)
            else:  # its job was paid for (or will be) when it was submitted: waiting on it pays nothing more
                self.log.info(
                    f"{cand.route} {op}: resuming the provider's job {earlier_job.job_id} ({earlier_job.state}, "
                    f"kept by run {earlier_job.run_id[:8]}): waited on and fetched, not submitted again"
                )
        rows: list[LedgerRow] = []  # the receipts of the current send
        actuals: dict[str, ActualCost] = {}  # row id -> the actual cost its usage report gave
        jobs: dict[str, CallJob | receipts.JobEvent] = {}  # the job(s) of the current send: id -> latest state
        resumed: set[str] = set()  # the earlier job the current send waits on
        reused: list[LedgerRow] = []  # the row of a kept answer parsed again: a stopped run paid for it
        answer_kept: list[bool] = []  # an answer of this call was kept (or parsed again): removed once it is booked

        def book(**row: Any) -> LedgerRow:
            """A ledger row of this call (its run, campaign, stage, route and units) with ``row``'s outcome."""
            return ledger.record(
                run_id=self.run_id,
                campaign=self.campaign,
                format=self.format_key,
                stage=self.stage,
                provider=cand.provider,
                model=price_model,
                units=units,
                call_key=key,
                **row,
            )

        def on_receipt(receipt: receipts.Receipt) -> None:
            if receipt.request_id and any(r.request_id == receipt.request_id for r in rows):
                return  # the same finished job reported twice (a repeated poll)
            if receipt.replayed:
                answer_kept.append(True)
                earlier_row = ledger.unsettled_row(key)
                if earlier_row is not None:  # billed once, by the run that received it: that row is settled
                    rows.append(earlier_row)
                    reused.append(earlier_row)
                    return
                # kept, but its row was never written (the run stopped between the two): this is its row
            elif receipt.answer is not None:
                try:  # before the row: a row whose answer is neither kept nor stored would be paid for again
                    cache.keep_answer(key, receipt.answer.to_bytes())
                    answer_kept.append(True)
                except Exception as exc:  # the answer is still in hand: go on, but say what is at risk
                    self.log.warning(
                        f"{cand.route} {op}: the paid answer could not be kept ({type(exc).__name__}: {exc}); if this "
                        "process stops before its result is stored, the answer is lost and not re-sent automatically"
                    )
            earlier = ledger.billed_row(key, receipt.request_id) if receipt.request_id and receipt.billed else None
            if earlier is not None:  # a resumed job that finished before: billed once, on the row it wrote then
                ledger.settle(earlier.id, outcome=RECEIVED)
                rows.append(dataclasses.replace(earlier, outcome=RECEIVED))
                return
            rows.append(
                book(
                    hit=False,
                    billed=receipt.billed,
                    outcome=receipt.outcome,
                    request_id=receipt.request_id,
                    reason=receipt.reason or None,
                )
            )

        def on_usage(usage: receipts.Usage) -> None:
            """The provider's reported usage for this send's answer: priced and put beside the row's estimate."""
            row = next((r for r in rows if usage.request_id and r.request_id == usage.request_id), None)
            row = row or (rows[-1] if rows else None)
            if row is None:
                self.log.warning(f"{cand.route} {op}: usage reported without a billable answer: {dict(usage.counts)}")
                return
            actual = ledger.prices.actual(
                cand.provider, cand.model, usage.counts, source=usage.source, price_model=price_model
            )
            actuals[row.id] = actual
            ledger.set_actual(row.id, actual)

        def on_job(event: receipts.JobEvent) -> None:
            cache.record_job(
                key,
                event.job_id,
                provider=event.provider,
                model=event.model,
                state=event.state,
                run_id=self.run_id,
                resume_with=event.resume_with,
            )
            jobs[event.job_id] = event

        def job_after(err: BaseException) -> str | None:
            """Keep the state of this send's job after ``err``; the id of a job still worth waiting on, or None."""
            if not jobs:
                return None
            job_id, job = list(jobs.items())[-1]
            finished = any(r.request_id == job_id for r in rows)  # the provider reported it done
            if job.state == JOB_READY or (not finished and job.state == JOB_SUBMITTED):
                # its result is there to fetch (a download failed), or it may still be running (a poll timed out
                # or failed): kept, unless the provider says it no longer knows the job (or its result)
                if not (job_id in resumed and isinstance(err, BadRequest)):
                    return job_id
                state = JOB_GONE
            else:
                state = JOB_FAILED  # it finished with an error or a block: waiting on it again gives the same
            cache.record_job(key, job_id, provider=job.provider, model=job.model, state=state, run_id=self.run_id)
            return None

        def settle_failure(err: BaseException) -> None:
            if not isinstance(err, Exception):
                # interrupted (a run terminated, SystemExit) while the answer was being read: nothing is known about
                # the answer, so its row stays `received` and its kept answer stays for the next attempt to parse
                if rows:
                    self.log.warning(
                        f"{cand.route} {op}: interrupted ({type(err).__name__}) after the provider's answer arrived; "
                        "the answer is kept: the next attempt parses it instead of paying again"
                    )
                return
            pending = job_after(err)
            outcome = outcome_of(err)
            for row in rows:
                final = row.outcome if row.outcome != "received" else outcome
                if row.outcome == "received":
                    ledger.settle(row.id, outcome=final, reason=str(err), request_id=getattr(err, "request_id", None))
                self.records.append(
                    CallRecord(
                        route=cand.route,
                        op=op,
                        key=key,
                        hit=False,
                        credits=row.credits,
                        saved_credits=0.0,
                        seconds=time.perf_counter() - started,
                        outcome=final,
                        billed=row.billed,
                        request_id=getattr(err, "request_id", None) or row.request_id,
                        actual_credits=actuals[row.id].credits if row.id in actuals else None,
                    )
                )
            billed = [r for r in rows if r.billed]
            drop_kept_answer()  # what came of it is booked: unusable answers are never parsed again either
            if pending is not None and isinstance(err, ProviderError):
                # the job is kept: another send of this call waits on it (not a new job), and no other route is
                # tried while it is pending (that would pay twice)
                err.pending_job = pending  # type: ignore[attr-defined]
                ready = jobs[pending].state == JOB_READY
                err.pending_job_ready = ready  # type: ignore[attr-defined]
                self.log.warning(
                    f"{cand.route} {op}: the provider's job {pending} is kept "
                    + ("(finished, its result not fetched)" if ready else "(it may still be running)")
                    + f": the next attempt waits on it and fetches its result instead of paying again: {err}"
                )
            elif billed and isinstance(err, ProviderError):
                # paid: never re-sent automatically; the outcome tells run_plan what to do with it
                err.retryable = False
                err.paid_outcome = "lost" if all(r.outcome == "lost" for r in billed) else outcome  # type: ignore[attr-defined]
                credits_paid = sum(r.credits for r in billed)
                self.log.warning(
                    f"{cand.route} {op}: the provider's answer was {err.paid_outcome} and may be billed "  # type: ignore[attr-defined]
                    f"({credits_paid:g} credits in the ledger); not re-sent: {err}"
                )

        def drop_kept_answer() -> None:
            if not answer_kept:
                return  # nothing was kept for this call (a job's result, a transport error)
            try:
                cache.drop_answer(key)
            except Exception as exc:  # only storage is wasted: the next kept answer of the key replaces it
                self.log.warning(f"{cand.route} {op}: the kept answer could not be removed: {exc}")

        def paid() -> bytes:
            kept = self._kept_answer(cand, key, op)
            if kept is not None:  # no slot, no send: the answer is here
                return send(kept)
            self._refuse_after_a_stopped_run(cand, key)
            pool = self.pool_slot(cand.provider) if self.pool_slot else contextlib.nullcontext()
            with pool, hub.slots(cand.provider) as slot:
                if slot.waited_s > 1:
                    self.log.info(f"{cand.route}: waited {slot.waited_s:.1f} s for a {cand.provider} slot")
                left = hub.max_attempts - cache.sends(key, self.run_id)
                if left <= 0:
                    raise SendBudgetSpent(
                        f"{op}: already sent {hub.max_attempts} time(s) in this run (the send budget per call)",
                        provider=cand.provider,
                        model=cand.model,
                    )

                def on_retry(err: ProviderError, attempt: int, delay: float) -> None:
                    self.log.warning(f"{cand.route} {op}: attempt {attempt} failed ({err}); retrying in {delay:.1f} s")

                return call_with_retries(
                    send,
                    max_attempts=left,
                    base_delay=hub.retry_base_delay_s,
                    total_budget_s=hub.retry_budget_s,
                    on_retry=on_retry,
                )

        def send(replay: receipts.KeptAnswer | None = None) -> bytes:
            if replay is None:
                cache.count_send(key, self.run_id)
            rows.clear()
            jobs.clear()
            resumed.clear()
            resume = cache.resumable_job(key)  # an earlier attempt's job: waited on, not submitted again
            if resume is not None:
                jobs[resume.job_id] = resume
                resumed.add(resume.job_id)
            try:
                with receipts.listening(
                    on_receipt, on_usage, on_job=on_job, resume=resume.handle if resume else None, replay=replay
                ):
                    return fn()
            except BaseException as err:
                settle_failure(err)
                raise

        paid_row_id: str | None = None

        def paid_row() -> str | None:
            nonlocal paid_row_id
            received = [r for r in rows if r.outcome == "received"]
            paid_row_id = received[-1].id if received else None
            return paid_row_id

        result = cached_call(
            cache,
            ledger,
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
            paid_row=paid_row,
        )
        paid_id = None if result.hit else paid_row_id
        if not result.hit:
            drop_kept_answer()
            for job_id, job in jobs.items():
                cache.record_job(
                    key, job_id, provider=job.provider, model=job.model, state=JOB_STORED, run_id=self.run_id
                )
        # a kept answer parsed again was paid for by the run that received it: for this run it is a hit
        hit = result.hit or bool(reused)
        if reused and not result.hit:
            book(hit=True)
        record = CallRecord(
            route=cand.route,
            op=op,
            key=key,
            hit=hit,
            credits=0.0 if hit else credits,
            saved_credits=credits if hit else 0.0,
            seconds=time.perf_counter() - started,
            actual_credits=actuals[paid_id].credits if paid_id in actuals and not hit else None,
        )
        self.records.append(record)
        if reused and not result.hit:
            self.log.info(
                f"{cand.route} {op}: the answer run {reused[0].run_id[:8]} paid for and received before it stopped "
                f"was kept: parsed now, not paid again (saved {credits:g} credits)"
            )
        else:
            self.log.info(
                f"{cand.route} {op}: "
                + (f"cache hit, saved {credits:g} credits" if result.hit else f"{credits:g} credits")
            )
        return result.data

    def _kept_answer(self, cand: Candidate, key: str, op: str) -> receipts.KeptAnswer | None:
        """The answer a stopped run paid for and kept but never stored (read under the key's lock), or None."""
        data = self._cache.kept_answer(key)
        if data is None:
            return None
        try:
            return receipts.KeptAnswer.from_bytes(data)
        except ValueError as exc:  # a torn write: as if nothing was kept (the row, if any, is refused below)
            self.log.warning(f"{cand.route} {op}: the kept answer of {key[:12]} cannot be read ({exc}); ignored")
            return None

    def _refuse_after_a_stopped_run(self, cand: Candidate, key: str) -> None:
        """A billed answer still ``received``, with neither a stored result, a kept answer nor a job to wait on:
        the run that received it stopped before keeping it. It was paid for; it is not re-sent automatically.

        Checked under the key's lock (every live attempt settles its rows before it lets go of the lock)."""
        row = self._ledger.unsettled_row(key)
        if row is None or self._cache.resumable_job(key) is not None:
            return
        raise PaidAnswerUnusable(
            f"already paid on {row.ts[:19]} (run {row.run_id[:8]}): the answer arrived, then that run stopped before "
            "its result was stored and the answer could not be kept; not re-sent automatically: re-roll the stage "
            f"(`media-routes reroll {self.stage} --campaign {self.campaign}`) to pay for a new answer",
            provider=cand.provider,
            model=cand.model,
            request_id=row.request_id,
        )

    def _refuse_resending_a_paid_failure(self, cand: Candidate, key: str) -> None:
        """A call whose paid answer was unusable (an earlier run) is not re-sent: that is an operator's re-roll."""
        earlier = self._ledger.paid_unusable(key)
        if earlier is None:
            return
        reason = (
            f"already paid on {earlier['ts'][:19]} (run {earlier['run_id'][:8]}) and the answer was "
            f"{earlier['outcome']}: {earlier['reason'] or 'no reason recorded'}; not re-sent automatically: re-roll "
            f"the stage (`media-routes reroll {self.stage} --campaign {self.campaign}`) to pay for a new answer"
        )
        common: dict[str, Any] = {"provider": cand.provider, "model": cand.model, "request_id": earlier["request_id"]}
        if earlier["outcome"] == "blocked":
            raise ContentBlocked(reason, block_reason="ALREADY_BLOCKED", **common)
        raise PaidAnswerUnusable(reason, **common)

    def summary(self) -> dict[str, Any]:
        return {
            "calls": len([r for r in self.records if not r.hit]),
            "cache_hits": len([r for r in self.records if r.hit]),
            "unusable": len([r for r in self.records if r.outcome != "usable"]),
            "credits": round(sum(r.credits for r in self.records), 6),
            # the provider-reported cost of the paid calls that reported one (None: none did)
            "actual_credits": _sum_or_none([r.actual_credits for r in self.records if not r.hit]),
            "saved_credits": round(sum(r.saved_credits for r in self.records), 6),
            "detail": [r.as_json() for r in self.records],
        }


def _sum_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 6) if known else None


def _health_note(err: ProviderError) -> tuple[bool, bool]:
    """(record it as an outage, provider-wide) for an outage that moved the plan on.

    A quota of one model (Gemini's ``...PerModel`` quota ids) only moves this run to the fallback: the route is not
    marked down for other campaigns. A provider-wide quota (a project quota, an exhausted balance) marks every route
    of the provider down at once. A spent send budget is this run's own count, not news about the provider.
    """
    if isinstance(err, SendBudgetSpent):
        return False, False
    if isinstance(err, QuotaExhausted):
        return err.provider_wide, err.provider_wide
    return True, False


def run_plan(
    plan: RoutePlan,
    attempt: Callable[[Candidate], T],
    *,
    log: logging.Logger | Any,
    health: Any | None = None,
    run_id: str = "",
) -> tuple[T, Candidate, list[Attempt]]:
    """Try the plan's candidates in order; see the module docstring for when it moves on.

    Health is written once per candidate and run (``HealthBook`` counts runs, not attempts). Nothing raised here is
    retryable by Dagster: the sends a call may make are spent in :meth:`HostedCalls.call`.
    """
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
            paid = getattr(err, "paid_outcome", None)
            pending = getattr(err, "pending_job", None)  # a job kept for the next attempt: no other route now
            unusable = paid in ("unparseable", "failed") or isinstance(err, PaidAnswerUnusable)
            outage = not unusable and pending is None and (isinstance(err, (*OUTAGES, SendBudgetSpent)))
            blocked = not unusable and isinstance(err, ContentBlocked)
            reason = str(err)
            note, provider_wide = _health_note(err)
            if outage and note and health is not None:
                health.record(
                    cand.route,
                    ok=False,
                    reason=f"{type(err).__name__}: {err.reason}"[:300],
                    run_id=run_id,
                    provider_wide=provider_wide,
                )
            if nxt is not None and (outage or (blocked and plan.profile.reroute_on_block)):
                why = "outage" if outage else "content block (the profile allows re-routing)"
                log.warning(f"{plan.stage}: {cand.route} failed ({why}): {reason}; falling back to {nxt}")
                attempts.append(Attempt(cand.route, "fallback", reason))
                continue
            attempts.append(Attempt(cand.route, "failed", reason))
            if pending is not None:
                detail = f" ({pending_note(err)})"
            elif unusable:
                detail = " (a paid answer that is unusable: not re-sent)"
            elif blocked and nxt is not None:
                detail = " (the profile does not re-route on a content block)"
            else:
                detail = ""
            raise RouteFailed(
                f"{plan.stage} failed on {cand.route}{detail}: {reason}",
                retryable=False,
                attempts=attempts,
                line=failure_line(plan.stage, err),
            ) from err
        if health is not None and cand.provider != "local":
            health.record(cand.route, ok=True, run_id=run_id)
        attempts.append(Attempt(cand.route, "ok"))
        return value, cand, attempts
    raise AssertionError("unreachable: the last candidate either returns or raises")


def failure_line(stage: str, err: ProviderError) -> str:
    """``stage: provider model: reason [request id]`` on one line, for the command line's failure summary."""
    reason = " ".join(err.reason.split())
    kind = type(err).__name__
    rid = f" (request id {err.request_id})" if err.request_id else " (no request id in the answer)"
    block = f" [{err.block_reason}]" if isinstance(err, ContentBlocked) and err.block_reason else ""
    pending = f"; {pending_note(err)}" if getattr(err, "pending_job", None) else ""
    return f"{stage}: {err.provider} {err.model}: {kind}{block}: {reason}{rid}{pending}"


def pending_note(err: ProviderError) -> str:
    """What a failure with a kept job (``pending_job``) means for the operator ('' without one)."""
    job = getattr(err, "pending_job", None)
    if job is None:
        return ""
    state = "finished, its result not fetched" if getattr(err, "pending_job_ready", False) else "may still be running"
    return (
        f"the provider's job {job} {state}; it is kept: materialize the stage again to wait on it and fetch its "
        "result (it is not submitted or paid again)"
    )
