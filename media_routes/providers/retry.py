"""Retry policy for provider calls.

Concurrency is not limited here: a paid call's limits are the Dagster provider pool and the machine-wide
:class:`~media_routes.providers.slots.ProviderSlots`, both taken in one place
(:meth:`media_routes.routing.execute` ``paid()``; docs/routing.md, "Concurrency").

``call_with_retries`` retries only errors marked ``retryable`` (rate limits, 5xx, timeouts) with
exponential backoff and full jitter, never waits less than a rate limit's ``retry_after``, and gives
up with the last error once the attempts or the total time budget would be exceeded. It does not
retry quota exhaustion, content blocks, auth or bad-request errors.

tenacity would cover the loop, but it is not a dependency of the project and the two policy points
that matter here (a per-error minimum wait, and refusing to start a wait that overruns the budget)
need custom hooks anyway; the loop below is short and fully tested.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from media_routes.providers.errors import ProviderError, RateLimited

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max_delay, base_delay * 2**(attempt-1))]."""
    cap = min(max_delay, base_delay * (2 ** (attempt - 1)))
    return rng.uniform(0.0, cap)


def call_with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int = 4,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    total_budget_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[ProviderError, int, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying retryable :class:`ProviderError` s.

    - ``max_attempts`` counts the first call.
    - The wait before attempt ``n+1`` is full jitter over ``base_delay * 2**(n-1)`` capped at ``max_delay``,
      raised to ``RateLimited.retry_after`` when that is longer (``max_delay`` never shortens it).
    - ``total_budget_s`` bounds the time from the first call: a wait that would end past the budget is not
      started, and the last error is raised instead.
    - ``on_retry(error, attempt, delay)`` is called before each wait (for metrics); errors are logged
      at WARNING without any request data.

    The raised error carries ``attempts``, the number of calls made.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    if base_delay < 0 or max_delay < 0 or total_budget_s < 0:
        raise ValueError("delays and budget must be >= 0")
    rng = rng if rng is not None else random.Random()
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except ProviderError as err:
            err.attempts = attempt
            if not err.retryable or attempt >= max_attempts:
                raise
            delay = backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay, rng=rng)
            if isinstance(err, RateLimited) and err.retry_after is not None:
                delay = max(delay, err.retry_after)
            elapsed = clock() - start
            if elapsed + delay > total_budget_s:
                log.warning(
                    "giving up after %d attempt(s): waiting %.2fs would exceed the %.1fs budget (%.2fs used): %s",
                    attempt,
                    delay,
                    total_budget_s,
                    elapsed,
                    err,
                )
                raise
            log.warning("attempt %d failed, retrying in %.2fs: %s", attempt, delay, err)
            if on_retry is not None:
                on_retry(err, attempt, delay)
            sleep(delay)
