"""Credits: a persistent content-addressed call cache, a call ledger and a price table (issue #4, storage core).

Nothing here is wired into the Dagster stages yet; adapters and stages are expected to go through
:func:`media_routes.credits.ledger.cached_call` (or :class:`CallCache` plus :class:`Ledger`) for every paid call.
"""

from media_routes.credits.call_cache import CacheCorruptError, CacheResult, CallCache, call_key
from media_routes.credits.ledger import Ledger, PriceTable, Units, UnknownPriceError, cached_call

__all__ = [
    "CacheCorruptError",
    "CacheResult",
    "CallCache",
    "Ledger",
    "PriceTable",
    "UnknownPriceError",
    "Units",
    "cached_call",
    "call_key",
]
