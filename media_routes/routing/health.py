"""Provider health: outages recorded per route; a route with repeated recent outages is skipped.

A stage that falls back because of an outage (server error, timeout, rate limit or quota after the
retries) records it here; a success clears the streak. The router rejects a route with at least
``threshold`` outages in the last ``window_s`` seconds and no success since, so the next partitions of a
backfill go straight to the fallback instead of each waiting out the retries first.
"""

from __future__ import annotations

import time
from pathlib import Path

from media_routes.credits.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS route_health (
    route   TEXT NOT NULL,
    ts      DOUBLE PRECISION NOT NULL,
    ok      BOOLEAN NOT NULL,
    reason  TEXT NOT NULL
)
"""


class HealthBook:
    def __init__(self, db: Path, *, window_s: float = 600.0, threshold: int = 3) -> None:
        self.db = Path(db)
        self.window_s = window_s
        self.threshold = threshold
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.db) as conn:
            conn.execute(SCHEMA)

    def record(self, route: str, *, ok: bool, reason: str = "") -> None:
        with connect(self.db) as conn:
            conn.execute(
                "INSERT INTO route_health (route, ts, ok, reason) VALUES (?, ?, ?, ?)",
                (route, time.time(), ok, reason[:300]),
            )

    def status(self, route: str) -> str | None:
        """Why ``route`` counts as unhealthy now, or None."""
        since = time.time() - self.window_s
        with connect(self.db) as conn:
            last_ok = conn.execute("SELECT MAX(ts) FROM route_health WHERE route = ? AND ok", (route,)).fetchone()[0]
            rows = conn.execute(
                "SELECT ts, reason FROM route_health WHERE route = ? AND NOT ok AND ts >= ? ORDER BY ts",
                (route, max(since, last_ok or 0.0)),
            ).fetchall()
        if len(rows) < self.threshold:
            return None
        return f"{len(rows)} outages in the last {self.window_s / 60:g} min (last: {rows[-1][1]})"
