"""One poll loop for the providers' long-running jobs (Veo operations, Kling tasks, fal queue requests).

Each adapter supplies how to fetch the job's state and how to read it; the loop owns the rest, the same for all:
a retryable HTTP error while polling (429, 5xx, a timeout) only delays the next poll (never shorter than the
server's Retry-After), a non-retryable one is raised, an error the state itself carries (a failed job) is raised
by ``read`` and never retried here, and past ``timeout_s`` the adapter's own timeout error is raised
(``retryable=False``: the job may still finish; wait again on the same id rather than resubmit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from media_routes.providers.errors import ProviderError, RateLimited

log = logging.getLogger(__name__)

P = TypeVar("P")  # the fetched payload
T = TypeVar("T")  # the finished job


def poll_until_done(
    fetch: Callable[[], P],
    read: Callable[[P], T | None],
    *,
    what: str,
    interval_s: float,
    timeout_s: float,
    timed_out: Callable[[int], ProviderError],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T:
    """Call ``fetch`` every ``interval_s`` until ``read`` of its payload returns the finished job (None: not done).

    ``timed_out(polls)`` makes the error raised when the next poll would pass ``timeout_s``; ``what`` names the job
    in the log.
    """
    deadline = clock() + timeout_s
    polls = 0
    while True:
        delay = interval_s
        polls += 1
        try:
            payload = fetch()
        except ProviderError as err:
            if not err.retryable:
                raise
            if isinstance(err, RateLimited) and err.retry_after is not None:
                delay = max(delay, err.retry_after)
            log.warning("polling %s failed, polling again in %.2fs: %s", what, delay, err)
        else:
            finished = read(payload)
            if finished is not None:
                return finished
        if clock() + delay > deadline:
            raise timed_out(polls)
        sleep(delay)
