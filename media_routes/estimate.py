"""Price a campaign's full fan-out (stages x formats) on its planned routes before anything runs.

A stage counts as **cached** when re-materializing it now would repeat exactly the calls of its latest
materialization, so every call would be a cache hit: that materialization was made on the route planned
now, every call key it recorded is in the call cache, its spec slice is unchanged (the ``spec_slice``
hash in its metadata equals the slice hash now), and the stage it read from is cached itself and still
has the output it read. Anything else is priced at the route's estimate. ``reroll``
prices a re-roll: that stage (a new seed misses the cache) and everything after it are paid again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import dagster as dg

from media_routes.credits.call_cache import CallCache
from media_routes.lineage import latest_metadata
from media_routes.routing.router import RoutePlan, RouterContext, plan_campaign
from media_routes.spec import Campaign
from media_routes.spec_slices import stage_slice_hashes
from media_routes.stages import FORMAT_STAGES, downstream_of, partition_key, upstream_of


@dataclass(frozen=True)
class EstimateRow:
    stage: str
    format: str | None
    route: str | None
    units: dict[str, float]
    credits: float  # what running it now would pay (0 when cached or local)
    list_credits: float  # the route's price for it, cached or not
    status: str  # "to pay", "cached", "local", "no admissible route"
    why: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _cached(
    instance: dg.DagsterInstance,
    cache: CallCache,
    plan: RoutePlan,
    campaign: Campaign,
    slices: dict[str, str],
    upstream_output: str | None,
) -> tuple[bool, str, str | None]:
    """(cached?, why, this stage's latest output hash)."""
    meta = latest_metadata(instance, plan.stage, partition_key(plan.stage, campaign.id, plan.format_key))
    if meta is None:
        return False, "never materialized", None
    output = meta.output_hash
    route = meta.route or {}
    if plan.chosen is None or route.get("route") != plan.chosen.route:
        return False, f"last made on {route.get('route', 'another route')}", output
    if meta.spec_slice != slices[plan.stage]:
        return False, "its part of the spec changed", output
    inputs = meta.input_hashes or {}
    if upstream_output is not None and upstream_output not in inputs.values():
        return False, "its input changed", output
    keys = [c.get("call_key", "") for c in (route.get("calls") or {}).get("detail", [])]
    if any(len(k) != 64 or k not in cache for k in keys):
        return False, "a call of it is not in the cache", output
    return True, f"{len(keys)} call(s) in the cache", output


def estimate(
    instance: dg.DagsterInstance,
    campaign: Campaign,
    ctx: RouterContext,
    cache: CallCache,
    *,
    formats: list[str] | None = None,
    reroll: str | None = None,
) -> list[EstimateRow]:
    plans = [p for p in plan_campaign(campaign, ctx) if p.format_key is None or not formats or p.format_key in formats]
    slices = stage_slice_hashes(campaign)
    rerolled = set(downstream_of(reroll)) if reroll else set()
    rows: list[EstimateRow] = []
    fresh: dict[tuple[str, str | None], tuple[bool, str | None]] = {}
    for plan in plans:
        upstream = upstream_of(plan.stage)
        up_format = plan.format_key if upstream in FORMAT_STAGES else None
        up_cached, up_output = fresh.get((str(upstream), up_format), (True, None)) if upstream else (True, None)
        cached, why, output = _cached(instance, cache, plan, campaign, slices, up_output)
        if cached and not up_cached:
            cached, why = False, f"{upstream} will change"
        if plan.stage in rerolled:
            cached, why = False, f"re-roll of {reroll}"
        fresh[(plan.stage, plan.format_key)] = (cached, output)
        chosen = plan.chosen
        if chosen is None:
            rows.append(
                EstimateRow(plan.stage, plan.format_key, None, {}, 0.0, 0.0, "no admissible route", "see routes")
            )
            continue
        units = {k: v for k, v in asdict(chosen.units).items() if v}
        price = float(chosen.credits or 0.0)
        if chosen.provider == "local":
            status, pay = "local", 0.0
        elif cached:
            status, pay = "cached", 0.0
        else:
            status, pay = "to pay", price
        rows.append(EstimateRow(plan.stage, plan.format_key, chosen.route, units, pay, price, status, why))
    return rows
