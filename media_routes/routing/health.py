"""Provider health: outages recorded per route; a route with repeated recent outages is skipped.

A stage that falls back because of an outage (server error, timeout, rate limit once the sends are spent)
records it here, **once per run** (``run_id``): a run's retries are one outcome, not several, so one bad run never
marks a route down on its own. A success clears the streak. The router rejects a route with outages from at least
``threshold`` runs in the last ``window_s`` seconds and no success since, so the next partitions of a backfill go
straight to the fallback instead of each waiting out the retries first.

A quota is different (``routing.execute._health_note``): a per-model quota is not recorded (this run moves to the
fallback; other campaigns' plans keep the route), while a provider-wide one (a project quota, an exhausted balance)
is recorded with ``provider_wide=True`` and marks every route of that provider down at once, until a success on any
of its routes or the window passes.
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
    reason  TEXT NOT NULL,
    run_id  TEXT NOT NULL DEFAULT '',
    scope   TEXT NOT NULL DEFAULT 'route'
)
"""
_ADDED = (("run_id", "TEXT NOT NULL DEFAULT ''"), ("scope", "TEXT NOT NULL DEFAULT 'route'"))


def provider_of(route: str) -> str:
    return route.split("/", 1)[0]


class HealthBook:
    def __init__(self, db: Path, *, window_s: float = 600.0, threshold: int = 3) -> None:
        self.db = Path(db)
        self.window_s = window_s
        self.threshold = threshold
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.db) as conn:
            conn.execute(SCHEMA)
            have = {row[1] for row in conn.execute("PRAGMA table_info(route_health)")}
            for name, sql_type in _ADDED:
                if name not in have:
                    conn.execute(f"ALTER TABLE route_health ADD COLUMN {name} {sql_type}")

    def record(self, route: str, *, ok: bool, reason: str = "", run_id: str = "", provider_wide: bool = False) -> None:
        """One outcome of ``route`` in run ``run_id``; ``provider_wide``: the outage holds all the provider's routes."""
        with connect(self.db) as conn:
            conn.execute(
                "INSERT INTO route_health (route, ts, ok, reason, run_id, scope) VALUES (?, ?, ?, ?, ?, ?)",
                (route, time.time(), ok, reason[:300], run_id, "provider" if provider_wide else "route"),
            )

    def status(self, route: str) -> str | None:
        """Why ``route`` counts as unhealthy now, or None."""
        since = time.time() - self.window_s
        provider = provider_of(route)
        with connect(self.db) as conn:
            last_ok = conn.execute("SELECT MAX(ts) FROM route_health WHERE route = ? AND ok", (route,)).fetchone()[0]
            provider_ok = conn.execute(
                "SELECT MAX(ts) FROM route_health WHERE ok AND (route = ? OR route LIKE ?)", (provider, f"{provider}/%")
            ).fetchone()[0]
            wide = conn.execute(
                "SELECT ts, reason FROM route_health WHERE scope = 'provider' AND NOT ok AND ts >= ?"
                " AND (route = ? OR route LIKE ?) ORDER BY ts DESC LIMIT 1",
                (max(since, provider_ok or 0.0), provider, f"{provider}/%"),
            ).fetchone()
            rows = conn.execute(
                "SELECT ts, reason, run_id, rowid FROM route_health WHERE route = ? AND NOT ok AND scope = 'route'"
                " AND ts >= ? ORDER BY ts",
                (route, max(since, last_ok or 0.0)),
            ).fetchall()
        if wide is not None:
            return f"{provider}: provider-wide quota or balance exhausted {time.time() - wide[0]:.0f} s ago ({wide[1]})"
        runs = {run_id or f"row{rowid}" for _, _, run_id, rowid in rows}
        if len(runs) < self.threshold:
            return None
        return f"{len(runs)} outages in the last {self.window_s / 60:g} min (last: {rows[-1][1]})"
