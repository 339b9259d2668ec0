"""Receipts: an adapter reports "the provider answered a billable request" before it parses the answer.

A paid answer must be accounted before anything can go wrong with it (issue #14): a truncated 200, a 200 with
no candidates, a blocked image that carried usage metadata and a Veo job that finished with an error were all
billed by the provider while the caller saw only an exception. So every adapter calls :func:`answered` at the
moment the provider's billable answer arrives (a 2xx of a generation request, a long-running job that is done,
a read timeout after the request was sent) and before it parses a byte of it. Whoever made the call and wants
to account for it (``routing.execute.HostedCalls``) listens with :func:`listening`; without a listener
:func:`answered` does nothing, so adapters stay usable on their own.

The seam is a context variable (one listener per thread / task), so this module needs nothing from the layers
above the adapters.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# outcome of a receipt as first reported; the listener settles it once parsing is done
RECEIVED = "received"  # a 2xx (or a finished job) arrived; parsing follows
LOST = "lost"  # the request was sent but its answer never arrived (a read timeout): the provider may bill it


@dataclass(frozen=True)
class Receipt:
    """One billable answer (or a lost one). ``billed``: whether the provider may charge for it."""

    provider: str
    model: str
    what: str  # e.g. "generateContent 200", "operation done", "read timeout"
    billed: bool = True
    outcome: str = RECEIVED
    request_id: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


_listener: contextvars.ContextVar[Callable[[Receipt], None] | None] = contextvars.ContextVar(
    "media_routes_receipt_listener", default=None
)


def answered(receipt: Receipt) -> None:
    """Report a billable answer to the current listener (if any). Called before the answer is parsed."""
    listener = _listener.get()
    if listener is not None:
        listener(receipt)


@contextlib.contextmanager
def listening(listener: Callable[[Receipt], None]) -> Iterator[None]:
    """Send every :func:`answered` receipt in this context to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
